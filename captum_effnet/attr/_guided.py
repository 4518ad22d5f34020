"""Guided backpropagation that is guided on SiLU / ReLU6 networks, and Guided Grad-CAM.

Captum's ``GuidedBackprop`` overrides the backward pass of ``nn.ReLU``
modules only. An EfficientNet has none (SiLU everywhere, ReLU6 in the lite
models, Hardswish in MobileNetV3), so there Captum's "guided" map is the
plain input gradient. Here the guided rule is applied after *every*
rectifier-like activation module: the gradient that leaves the activation
towards its input is ``ReLU(f'(x) * g)`` for an incoming gradient ``g`` —
exactly Captum's rule for ReLU (``ReLU`` of the module's input gradient),
extended to the other activations.

Mechanics: a forward pre-hook feeds each activation a copy of its input made
by an identity autograd function whose backward clamps the gradient at 0.
The copy also means in-place activations (``SiLU(inplace=True)``) can run
under autograd without error. Hooks are removed after success and errors.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from captum.attr import GradientAttribution
from captum.log import log_usage
from torch import Tensor, nn

from ._layers import (
    _as_args,
    _as_inputs,
    _check_channels,
    _check_finite_result,
    _eval_mode,
)

__all__ = ["DEFAULT_GUIDED_ACTIVATIONS", "GuidedBackprop", "GuidedGradCam"]

#: Activation modules whose backward pass is guided by default.
DEFAULT_GUIDED_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
)


class _ClampGrad(torch.autograd.Function):
    """Identity (a copy) forward; backward lets only positive gradient through."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad.clamp_min(0)


def _guide(_mod: nn.Module, inp: tuple[Any, ...]) -> Any:
    if inp and isinstance(inp[0], Tensor) and inp[0].requires_grad:
        return (_ClampGrad.apply(inp[0]), *inp[1:])
    return None


def _check_model(model: Any, cls: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"The 'model' parameter of {cls} must be a torch.nn.Module (its activation "
            f"modules are hooked). Got {type(model).__name__} instead."
        )
    return model


class GuidedBackprop(GradientAttribution):
    """Guided backpropagation that is really guided on SiLU / ReLU6 networks.

    A drop-in for ``captum.attr.GuidedBackprop``: same constructor argument
    and ``attribute(inputs, target, additional_forward_args)``, same output
    form (the input's shape). Where Captum overrides only ``nn.ReLU`` (so on
    an EfficientNet it silently returns the plain gradient), this overrides
    every module in ``activations``; on ReLU networks both agree.

    Parameters
    ----------
    model : nn.Module
        The model.
    activations : tuple of type, optional
        Activation module classes to guide; default
        :data:`DEFAULT_GUIDED_ACTIVATIONS` (ReLU, ReLU6, LeakyReLU, ELU,
        CELU, SELU, GELU, SiLU, Mish, Hardswish). Gates such as the sigmoid
        of squeeze-and-excitation are left alone.
    force_eval : bool, default True
        Run in eval mode for the call, restoring every submodule's mode.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from captum_effnet.attr import GuidedBackprop
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.SiLU(), nn.Conv2d(8, 8, 3), nn.SiLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    >>> x = torch.rand(1, 3, 16, 16)
    >>> guided = GuidedBackprop(net).attribute(x, target=3)
    >>> plain = torch.autograd.grad(net(x.requires_grad_())[0, 3], x)[0]
    >>> guided.shape == x.shape, torch.allclose(guided, plain)   # Captum's would be equal
    (True, False)
    """

    _display_name: ClassVar[str] = "Guided Backprop"

    def __init__(self, model: nn.Module,
                 activations: tuple[type[nn.Module], ...] | None = None, *,
                 force_eval: bool = True) -> None:
        cls = type(self).__name__
        model = _check_model(model, cls)
        if activations is None:
            activations = DEFAULT_GUIDED_ACTIVATIONS
        if not isinstance(activations, tuple) or not activations or not all(
            isinstance(a, type) and issubclass(a, nn.Module) for a in activations
        ):
            raise TypeError(
                f"The 'activations' parameter of {cls} must be a non-empty tuple of "
                f"nn.Module subclasses (e.g. (nn.ReLU, nn.SiLU)). Got {activations!r} "
                "instead."
            )
        if not isinstance(force_eval, bool):
            raise TypeError(f"The 'force_eval' parameter of {cls} must be a bool. "
                            f"Got {force_eval!r} instead.")
        GradientAttribution.__init__(self, model)
        self.model = model
        self.activations = activations
        self.force_eval = force_eval
        #: ``(N, 1)`` classes of the last :meth:`attribute` call.
        self.last_targets: Tensor | None = None

    @classmethod
    def get_name(cls) -> str:
        """The method's usual name."""
        return cls._display_name

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: Any = None,
        additional_forward_args: Any = None,
    ) -> Tensor | tuple[Tensor, ...]:
        """Guided gradients of the target scores with respect to the inputs.

        Parameters
        ----------
        inputs : Tensor or tuple of Tensor
            Images ``(N, C, H, W)``, floating point.
        target : int, list, tuple or Tensor, optional
            One class per sample, in Captum's forms; ``None`` (**differs**
            from Captum): the predicted class.
        additional_forward_args : Any, optional
            Extra forward arguments, as in Captum.

        Returns
        -------
        Tensor or tuple of Tensor
            Same shapes (and tuple-ness) as ``inputs``.
        """
        from ._grad_cam import _targets

        func = f"{type(self).__name__}.attribute"
        is_tuple = isinstance(inputs, tuple)
        tup = _as_inputs(inputs, func)
        args = _as_args(additional_forward_args)
        _check_channels(self.model, tup, func)
        xs = tuple(x.detach().clone().requires_grad_(True) for x in tup)
        handles = [m.register_forward_pre_hook(_guide) for m in self.model.modules()
                   if isinstance(m, self.activations)]
        try:
            with _eval_mode(self.model, self.force_eval), torch.enable_grad():
                out = self.forward_func(*xs, *args)
                if not isinstance(out, Tensor):
                    raise TypeError(
                        f"The 'model' of {type(self).__name__} must return a tensor of "
                        f"scores. Got {type(out).__name__} instead."
                    )
                targets, multi = _targets(out.detach(), target, None, xs[0].shape[0], func)
                if multi:
                    raise ValueError(
                        f"The 'target' parameter of {func} must give one class per "
                        f"sample. Got {targets.shape[1]} per sample instead."
                    )
                picked = out.reshape(out.shape[0], -1).gather(1, targets).sum()
                grads = torch.autograd.grad(picked, xs, allow_unused=True)
        finally:
            for h in handles:
                h.remove()
        self.last_targets = targets
        result = tuple(torch.zeros_like(x) if g is None else g.detach()
                       for g, x in zip(grads, xs, strict=True))
        for r in result:
            _check_finite_result(r, type(self).__name__, "model")
        return result if is_tuple else result[0]


class GuidedGradCam(GradientAttribution):
    """Guided Grad-CAM: guided backprop (SiLU-aware) times the upsampled Grad-CAM.

    A drop-in for ``captum.attr.GuidedGradCam(model, layer)`` whose guided
    part is :class:`GuidedBackprop` (really guided on EfficientNets) and
    whose CAM is :class:`~captum_effnet.attr.GradCam` (layer found for you).
    Differs from Captum's: ``layer`` optional, ``interpolate_mode`` default
    ``"bilinear"`` (Captum: ``"nearest"``), ``target=None`` means the
    predicted class.

    Parameters
    ----------
    model : nn.Module
        The model.
    layer : nn.Module or str, optional
        Grad-CAM layer; ``None`` finds it as :class:`GradCam` does.
    device_ids : list of int, optional
        As in Captum (for the Grad-CAM part).
    activations : tuple of type, optional
        As for :class:`GuidedBackprop`.
    force_eval : bool, default True
        As for :class:`GradCam`.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from captum_effnet.attr import GuidedGradCam
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    >>> GuidedGradCam(net).attribute(torch.rand(2, 3, 16, 16), target=1).shape
    torch.Size([2, 3, 16, 16])
    """

    _display_name: ClassVar[str] = "Guided Grad-CAM"

    def __init__(self, model: nn.Module, layer: nn.Module | str | None = None,
                 device_ids: list[int] | None = None, *,
                 activations: tuple[type[nn.Module], ...] | None = None,
                 force_eval: bool = True) -> None:
        from ._grad_cam import GradCam

        model = _check_model(model, type(self).__name__)
        GradientAttribution.__init__(self, model)
        self.grad_cam = GradCam(model, layer, device_ids, force_eval=force_eval)
        self.guided_backprop = GuidedBackprop(model, activations, force_eval=force_eval)

    @property
    def layer(self) -> nn.Module | None:
        """The Grad-CAM layer (``None`` until found on the first call)."""
        return self.grad_cam.layer

    @classmethod
    def get_name(cls) -> str:
        """The method's usual name."""
        return cls._display_name

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: Any = None,
        additional_forward_args: Any = None,
        interpolate_mode: str = "bilinear",
        attribute_to_layer_input: bool = False,
    ) -> Tensor | tuple[Tensor, ...]:
        """Element-wise product of guided gradients and the upsampled Grad-CAM.

        Parameters
        ----------
        inputs, target, additional_forward_args
            As for :meth:`GuidedBackprop.attribute` (one class per sample).
        interpolate_mode : str, default "bilinear"
            How the CAM is upsampled to the input (Captum's default: nearest).
        attribute_to_layer_input : bool, default False
            CAM on the layer's input instead of its output.

        Returns
        -------
        Tensor or tuple of Tensor
            Same shapes as ``inputs``.
        """
        func = f"{type(self).__name__}.attribute"
        if interpolate_mode is None:
            raise ValueError(
                f"The 'interpolate_mode' parameter of {func} must be a torch "
                "interpolation mode such as 'bilinear' or 'nearest'. Got None instead."
            )
        cams = self.grad_cam.attribute(
            inputs, target, additional_forward_args, attribute_to_layer_input,
            interpolate_mode=interpolate_mode,
        )
        cam_tuple = cams if isinstance(cams, tuple) else (cams,)
        if cam_tuple[0].shape[1] != 1:
            raise ValueError(
                f"The 'target' parameter of {func} must give one class per sample. "
                f"Got {cam_tuple[0].shape[1]} per sample instead."
            )
        targets = self.grad_cam.last_targets
        guided = self.guided_backprop.attribute(
            inputs, None if targets is None else targets[:, 0], additional_forward_args
        )
        guided_tuple = guided if isinstance(guided, tuple) else (guided,)
        out = tuple(g * c for g, c in zip(guided_tuple, cam_tuple, strict=True))
        return out if isinstance(inputs, tuple) else out[0]
