"""Grad-CAM and its variants as Captum layer attributions.

Every class here is a subclass of Captum's ``LayerAttribution`` and
``GradientAttribution`` and shares one engine (:class:`_CamBase`), which

- finds the layer when none is given (plugin hook, then the generic rule,
  see :func:`~captum_effnet.attr.find_target_layer`);
- gets the layer activations ``A`` (N, C, H, W) and the gradients ``G`` of
  the chosen scores with respect to ``A`` for any number of targets per
  sample from **one forward pass**;
- uses the exact shortcut ``G[n, k, c, i, j] = W[t_nk, c] / (H*W)`` when only
  global average pooling and a linear classifier follow the layer (every
  EfficientNet's last block), with the forward run under
  ``torch.inference_mode`` and no backward at all;
- otherwise takes the autograd path: the forward up to the layer runs without
  autograd, the layer output is copied into a fresh leaf (so in-place SiLU or
  ``result += input`` downstream cannot touch it), and
  ``torch.autograd.grad`` runs once per target column to that leaf only;
- leaves the model as it found it: hooks removed after success and errors,
  parameters' ``.grad`` untouched (``torch.autograd.grad`` never accumulates),
  ``requires_grad`` flags unchanged, and every submodule's train/eval flag
  restored. By default the model is put in eval mode for the call
  (``force_eval=True``): batch-norm in train mode mixes the samples of a
  batch (each sample's map would depend on the other samples, and the running
  statistics would be updated as a side effect), and dropout would make the
  map random.

Each variant only says how ``A`` and ``G`` become a map (``_weights``).
"""

from __future__ import annotations

import functools
import logging
import math
from numbers import Integral
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from captum._utils.gradient import compute_layer_gradients_and_eval
from captum.attr import GradientAttribution, LayerAttribution
from captum.log import log_usage
from torch import Tensor, nn

from .._validation import describe
from ._guided import GuidedBackprop, GuidedGradCam
from ._layers import (
    _as_args,
    _as_inputs,
    _check_channels,
    _check_finite_result,
    _eval_mode,
    _linear_head,
    _model_of,
    _module_name,
    _probe,
    _resolve,
)

__all__ = [
    "BUILTIN_ATTRIBUTIONS",
    "GradCam",
    "GradCamPlusPlus",
    "HiResCam",
    "LayerCam",
    "XGradCam",
]

logger = logging.getLogger("captum_effnet.attr")

_UNSET: Any = object()
_INTERPOLATE_MODES = ("bilinear", "bicubic", "nearest", "nearest-exact", "area")


def _spatial_sum(t: Tensor, hw: int) -> Tensor:
    """Sum over the last two axes of a tensor that may be spatially broadcast (1x1)."""
    return t.sum((-2, -1)) * (hw // (t.shape[-2] * t.shape[-1]))


def _check_bool(value: Any, name: str, func: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(
            f"The {name!r} parameter of {func} must be a bool (True or False). "
            f"Got {value!r} instead."
        )
    return value


class _CamBase(LayerAttribution, GradientAttribution):
    """Shared engine of the CAM family; subclasses implement :meth:`_weights`."""

    _display_name: ClassVar[str] = "CAM"

    def __init__(
        self,
        forward_func: Any,
        layer: nn.Module | str | None = None,
        device_ids: list[int] | None = None,
        *,
        force_eval: bool = True,
    ) -> None:
        cls = type(self).__name__
        if not callable(forward_func):
            raise TypeError(
                f"The 'forward_func' parameter of {cls} must be a torch.nn.Module or a "
                f"callable returning scores. Got {type(forward_func).__name__} instead."
            )
        _check_bool(force_eval, "force_eval", cls)
        model = _model_of(forward_func)
        layer = self._check_layer(model, layer, cls)
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        GradientAttribution.__init__(self, forward_func)
        self.force_eval = force_eval
        #: ``(N, K)`` long tensor of the classes of the last :meth:`attribute` call.
        self.last_targets: Tensor | None = None
        self._model = model
        self._head: Any = _UNSET
        if self.layer is None and model is not None:
            from .._plugins import target_layer_from_plugins

            found = target_layer_from_plugins(model)
            if found is not None:
                self._set_layer(found, "the captum_effnet_target_layer plugin hook")

    # ------------------------------------------------------------------ setup
    @staticmethod
    def _check_layer(model: nn.Module | None, layer: Any, cls: str) -> nn.Module | None:
        if layer is None:
            if model is None:
                raise TypeError(
                    f"The 'layer' parameter of {cls} must be given (an nn.Module of the "
                    "model) when forward_func is not an nn.Module or its bound forward: "
                    "the layer cannot be found without the model. Got None instead."
                )
            return None
        if isinstance(layer, str):
            if model is None:
                raise TypeError(
                    f"The 'layer' parameter of {cls} must be an nn.Module when "
                    f"forward_func is not an nn.Module. Got the name {layer!r} instead."
                )
            names = [n for n, _ in model.named_modules() if n]
            if layer not in names:
                from .._validation import suggest

                close = suggest(layer, names)
                hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
                raise ValueError(
                    f"The 'layer' parameter of {cls} must name a submodule of the model, "
                    f"e.g. {names[-3:]!r}{hint}. Got {layer!r} instead."
                )
            return model.get_submodule(layer)
        if not isinstance(layer, nn.Module):
            raise TypeError(
                f"The 'layer' parameter of {cls} must be a torch.nn.Module (a submodule "
                f"of the model), a submodule name, or None. Got {type(layer).__name__} "
                "instead."
            )
        if model is not None and not any(m is layer for m in model.modules()):
            raise ValueError(
                f"The 'layer' parameter of {cls} must be a submodule of the model "
                f"({type(model).__name__}). Got a {type(layer).__name__} that is not in "
                "it instead."
            )
        return layer

    def _set_layer(self, layer: nn.Module, how: str) -> None:
        self.layer = layer
        self._head = _UNSET
        logger.info(
            "%s: layer %r (%s) chosen by %s",
            type(self).__name__,
            _module_name(self._model, layer),
            type(layer).__name__,
            how,
        )

    def _ensure_layer(self, inputs: tuple[Tensor, ...], args: tuple[Any, ...],
                      func: str) -> nn.Module:
        if self.layer is None:
            model = cast(nn.Module, self._model)  # not None: checked in __init__
            layer, how, trace = _resolve(model, inputs, args, func)
            self._set_layer(layer, how)
            if trace is not None:
                self._head = _linear_head(trace, layer)
        return self.layer

    def _linear_after_layer(self, inputs: tuple[Tensor, ...],
                            args: tuple[Any, ...]) -> nn.Linear | None:
        if self._head is _UNSET:
            trace = _probe(cast(nn.Module, self._model), inputs, args, keep_outputs=True)
            self._head = _linear_head(trace, self.layer)
        return self._head

    # ------------------------------------------------------------- Captum API
    def has_convergence_delta(self) -> bool:
        """CAM methods give no convergence delta (as Captum's ``LayerGradCam``)."""
        return False

    @property
    def multiplies_by_inputs(self) -> bool:
        """``False``: the map is not multiplied by the inputs (as ``LayerGradCam``)."""
        return False

    @classmethod
    def get_name(cls) -> str:
        """The method's usual name, e.g. ``"Grad-CAM"``."""
        return cls._display_name

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: Any = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = True,
        attr_dim_summation: bool = True,
        grad_kwargs: dict[str, Any] | None = None,
        *,
        top_k: int | None = None,
        interpolate_mode: str | None = "bilinear",
        normalize: bool = False,
        shortcut: bool = True,
    ) -> Tensor | tuple[Tensor, ...]:
        """Compute the class activation maps.

        The positional parameters are Captum's ``LayerGradCam.attribute`` ones,
        in the same order; the defaults that differ are marked.

        Parameters
        ----------
        inputs : Tensor or tuple of Tensor
            Images ``(N, C, H, W)``, floating point (as in Captum, a tuple
            when the model takes several tensors; the map is sized like the
            first).
        target : int, list, tuple or Tensor, optional
            Captum's forms: an int for every sample, a list / 1-D tensor with
            one class per sample, a tuple (or list of tuples) for outputs with
            more than two dimensions. In addition, a list of lists or an
            ``(N, K)`` tensor asks for ``K`` classes per sample at once.
            ``None`` (**differs**: Captum needs a scalar output): the
            predicted class of each sample, or the single output.
        additional_forward_args : Any, optional
            Extra arguments of the forward function, as in Captum.
        attribute_to_layer_input : bool, default False
            Use the layer's input instead of its output.
        relu_attributions : bool, default True
            **Differs** (Captum: ``False``): the ReLU of the paper is applied.
        attr_dim_summation : bool, default True
            Sum over channels; ``False`` returns the per-channel terms
            ``(N, C, h, w)`` (one target per sample only).
        grad_kwargs : dict, optional
            Extra keyword arguments of ``torch.autograd.grad``; giving them
            turns the shortcut off.
        top_k : int, optional
            Maps of each sample's ``top_k`` highest-scoring classes, from the
            same forward (exclusive with ``target``); the classes are left in
            :attr:`last_targets`.
        interpolate_mode : str or None, default "bilinear"
            **Differs** (Captum returns the layer's resolution): the map is
            upsampled to the input's height and width with this mode
            (``align_corners=False``); ``None`` keeps the layer's resolution.
        normalize : bool, default False
            Min-max scale each map to [0, 1] (pytorch-grad-cam's display
            scaling). Off by default: Captum's metrics need the raw scale.
        shortcut : bool, default True
            Allow the exact global-average-pool + linear shortcut when it
            applies; ``False`` forces the autograd path.

        Returns
        -------
        Tensor or tuple of Tensor
            ``(N, 1, H, W)`` for one target per sample, ``(N, K, H, W)`` for
            ``K`` targets per sample (dimension 1 follows the targets' order),
            ``(N, C, H, W)`` with ``attr_dim_summation=False``. ``H, W`` are
            the input's (or the layer's with ``interpolate_mode=None``).
            The form follows ``inputs`` (**differs**: ``LayerGradCam``
            follows the layer): a tensor for a tensor, a tuple with one map
            per input tensor (each sized like it) for a tuple, which is what
            ``captum.metrics.sensitivity_max`` and ``infidelity`` expect.

        Raises
        ------
        ValueError
            Inputs that are not 4-D, empty, or hold NaN/inf; channels that do
            not match the model's stem; a target out of range; a model that
            gives NaN/inf for finite inputs (never a silent NaN map). See
            ``docs/errors.md``.
        TypeError
            Inputs that are not tensors, not floating point, or not of the
            model's dtype; wrong parameter types.
        """
        func = f"{type(self).__name__}.attribute"
        tup = _as_inputs(inputs, func)
        args = _as_args(additional_forward_args)
        for name, value in (
            ("attribute_to_layer_input", attribute_to_layer_input),
            ("relu_attributions", relu_attributions),
            ("attr_dim_summation", attr_dim_summation),
            ("normalize", normalize),
            ("shortcut", shortcut),
        ):
            _check_bool(value, name, func)
        if interpolate_mode is not None and interpolate_mode not in _INTERPOLATE_MODES:
            from .._validation import check_choice

            check_choice(interpolate_mode, [*_INTERPOLATE_MODES, None],
                         name="interpolate_mode", func=func)
        if top_k is not None:
            if target is not None:
                raise ValueError(
                    f"The 'top_k' parameter of {func} must be None when 'target' is "
                    f"given (they are exclusive). Got top_k={top_k!r} with "
                    f"target={target!r} instead."
                )
            if isinstance(top_k, bool) or not isinstance(top_k, Integral):
                raise TypeError(
                    f"The 'top_k' parameter of {func} must be an int >= 1 or None. "
                    f"Got {top_k!r} instead."
                )
            if top_k < 1:
                raise ValueError(
                    f"The 'top_k' parameter of {func} must be an int >= 1 or None. "
                    f"Got {top_k!r} instead."
                )
        if grad_kwargs is not None and not isinstance(grad_kwargs, dict):
            raise TypeError(
                f"The 'grad_kwargs' parameter of {func} must be a dict or None. "
                f"Got {type(grad_kwargs).__name__} instead."
            )
        _check_channels(self._model, tup, func)
        layer = self._ensure_layer(tup, args, func)

        with _eval_mode(self._model, self.force_eval):
            acts, grads, targets, _multi = self._acts_and_grads(
                layer, tup, args, target, top_k, attribute_to_layer_input,
                grad_kwargs, shortcut, func,
            )

        if not attr_dim_summation and targets.shape[1] != 1:
            raise ValueError(
                f"The 'attr_dim_summation' parameter of {func} must be True when several "
                f"targets per sample are asked for ({targets.shape[1]}). Got False instead."
            )
        with torch.no_grad():
            cam = self._combine(acts, grads, attr_dim_summation)
            _check_finite_result(cam, type(self).__name__)
            if relu_attributions:
                cam = F.relu(cam)
            maps = tuple(_finish(cam, tuple(x.shape[-2:]), interpolate_mode, normalize)
                         for x in tup)
        self.last_targets = targets.detach().clone()
        return maps if isinstance(inputs, tuple) else maps[0]

    # -------------------------------------------------------------- the maps
    def _weights(self, acts: Tensor, grads: Tensor, hw: int) -> tuple[str, Tensor]:
        """``("channel", (N, K, C))`` or ``("pixel", (N, K, C, h, w))`` weights.

        ``grads`` is ``(N, K, C, H, W)``, or ``(N, K, C, 1, 1)`` when it is the
        same at every position (the shortcut); ``hw = H * W``.
        """
        raise NotImplementedError

    def _combine(self, acts: Tensor, grads: Tensor, summed: bool) -> Tensor:
        hw = acts.shape[-2] * acts.shape[-1]
        kind, w = self._weights(acts, grads, hw)
        w = w.to(acts.dtype)
        if kind == "channel":
            if summed:
                return torch.einsum("nkc,nchw->nkhw", w, acts)
            return w[:, 0, :, None, None] * acts
        if w.shape[-2:] == (1, 1):
            if summed:
                return torch.einsum("nkc,nchw->nkhw", w[..., 0, 0], acts)
            return w[:, 0] * acts
        if summed:
            return torch.einsum("nkchw,nchw->nkhw", w, acts)
        return w[:, 0] * acts

    # ------------------------------------------------------------ the passes
    def _acts_and_grads(
        self,
        layer: nn.Module,
        inputs: tuple[Tensor, ...],
        args: tuple[Any, ...],
        target: Any,
        top_k: int | None,
        to_input: bool,
        grad_kwargs: dict[str, Any] | None,
        shortcut: bool,
        func: str,
    ) -> tuple[Tensor, Tensor, Tensor, bool]:
        parallel = self.device_ids is not None or isinstance(
            self.forward_func, nn.DataParallel
        )
        if (
            shortcut
            and not to_input
            and not parallel
            and grad_kwargs is None
            and self._model is not None
        ):
            head = self._linear_after_layer(inputs, args)
            if head is not None:
                done = self._shortcut(layer, head, inputs, args, target, top_k, func)
                if done is not None:
                    return done
                logger.debug("%s: shortcut check failed, autograd path", func)
        if parallel:
            return self._captum_path(layer, inputs, args, target, top_k, to_input,
                                     grad_kwargs, func)
        return self._autograd_path(layer, inputs, args, target, top_k, to_input,
                                   grad_kwargs, func)

    def _shortcut(
        self,
        layer: nn.Module,
        head: nn.Linear,
        inputs: tuple[Tensor, ...],
        args: tuple[Any, ...],
        target: Any,
        top_k: int | None,
        func: str,
    ) -> tuple[Tensor, Tensor, Tensor, bool] | None:
        saved: list[Tensor] = []

        def hook(_mod: nn.Module, _inp: Any, out: Any) -> None:
            if isinstance(out, Tensor):
                saved.append(out.clone())

        handle = layer.register_forward_hook(hook)
        try:
            with torch.inference_mode():
                out = self.forward_func(*inputs, *args)
        finally:
            handle.remove()
        if len(saved) != 1 or not isinstance(out, Tensor) or out.ndim != 2:
            return None
        if any(m.training for m in head.modules()):
            return None
        acts = saved[0]
        if acts.ndim != 4:
            return None
        weight = head.weight.detach()
        with torch.inference_mode():
            ref = F.linear(acts.mean((2, 3)), weight,
                           None if head.bias is None else head.bias.detach())
            scale = max(1.0, float(ref.abs().max())) if ref.numel() else 1.0
            tol = 1e-4 if acts.dtype in (torch.float32, torch.float64) else 1e-2
            if ref.shape != out.shape or not torch.allclose(out, ref, rtol=tol,
                                                            atol=tol * scale):
                return None
        targets, multi = _targets(out, target, top_k, inputs[0].shape[0], func)
        hw = acts.shape[2] * acts.shape[3]
        with torch.no_grad():
            grads = (weight[targets] / hw)[..., None, None]  # (N, K, C, 1, 1)
            acts = acts.clone()  # a normal (non-inference) tensor from here on
        return acts, grads, targets, multi

    def _autograd_path(
        self,
        layer: nn.Module,
        inputs: tuple[Tensor, ...],
        args: tuple[Any, ...],
        target: Any,
        top_k: int | None,
        to_input: bool,
        grad_kwargs: dict[str, Any] | None,
        func: str,
    ) -> tuple[Tensor, Tensor, Tensor, bool]:
        state: dict[str, Any] = {"calls": 0, "leaf": None, "bad": None}

        def capture(value: Any) -> Any:
            state["calls"] += 1
            if state["calls"] > 1:
                return None
            if not isinstance(value, Tensor) or not value.is_floating_point():
                state["bad"] = type(value).__name__
                return None
            # A private copy that nothing downstream can modify in place...
            leaf = value.detach().clone().requires_grad_(True)
            state["leaf"] = leaf
            # ...and autograd recording from here on only.
            torch.set_grad_enabled(True)
            return leaf.clone()

        if to_input:
            def pre_hook(_mod: nn.Module, inp: tuple[Any, ...]) -> Any:
                if not inp:
                    state["calls"] += 1
                    state["bad"] = "no positional input"
                    return None
                new = capture(inp[0])
                return None if new is None else (new, *inp[1:])

            handle = layer.register_forward_pre_hook(pre_hook)
        else:
            def hook(_mod: nn.Module, _inp: Any, out: Any) -> Any:
                return capture(out)

            handle = layer.register_forward_hook(hook)

        prev = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(False)
            out = self.forward_func(*inputs, *args)
        finally:
            torch.set_grad_enabled(prev)
            handle.remove()

        what = "input" if to_input else "output"
        if state["calls"] == 0:
            raise ValueError(
                f"The 'layer' parameter of {type(self).__name__} must be a module that "
                f"runs in the forward pass. Got {type(layer).__name__} "
                f"({_module_name(self._model, layer)}), which did not run, instead."
            )
        if state["calls"] > 1:
            raise ValueError(
                f"The 'layer' parameter of {type(self).__name__} must be a module that "
                f"runs once per forward. Got {type(layer).__name__} "
                f"({_module_name(self._model, layer)}), which ran {state['calls']} "
                "times, instead; pick one of its call sites' parent modules."
            )
        if state["bad"] is not None:
            raise ValueError(
                f"The 'layer' parameter of {type(self).__name__} must be a module whose "
                f"{what} is one floating-point tensor. Got a {type(layer).__name__} "
                f"whose {what} is {state['bad']} instead."
            )
        leaf: Tensor = state["leaf"]
        if leaf.ndim != 4:
            raise ValueError(
                f"The 'layer' parameter of {type(self).__name__} must be a module whose "
                f"{what} is 4-D (N, C, H, W). Got a {type(layer).__name__} whose {what} "
                f"has shape {tuple(leaf.shape)} instead."
            )
        if not isinstance(out, Tensor):
            raise TypeError(
                f"The 'forward_func' parameter of {type(self).__name__} must return a "
                f"tensor of scores. Got {type(out).__name__} instead."
            )
        targets, multi = _targets(out.detach(), target, top_k, inputs[0].shape[0], func)
        if not out.requires_grad:
            raise ValueError(
                f"The 'layer' parameter of {type(self).__name__} must be a module the "
                f"output depends on. Got {type(layer).__name__} "
                f"({_module_name(self._model, layer)}), which the scores do not depend "
                "on, instead."
            )
        with torch.enable_grad():
            scores = out.reshape(out.shape[0], -1)
        kwargs = dict(grad_kwargs or {})
        kwargs.pop("retain_graph", None)
        n_t = targets.shape[1]
        grads = []
        with torch.enable_grad():  # also when called under no_grad (NoiseTunnel, metrics)
            for k in range(n_t):
                picked = scores.gather(1, targets[:, k : k + 1]).sum()
                (g,) = torch.autograd.grad(picked, leaf, retain_graph=k < n_t - 1, **kwargs)
                grads.append(g)
        return leaf.detach(), torch.stack(grads, 1), targets, multi

    def _captum_path(
        self,
        layer: nn.Module,
        inputs: tuple[Tensor, ...],
        args: tuple[Any, ...],
        target: Any,
        top_k: int | None,
        to_input: bool,
        grad_kwargs: dict[str, Any] | None,
        func: str,
    ) -> tuple[Tensor, Tensor, Tensor, bool]:
        """DataParallel / ``device_ids``: Captum's gathering, one pass per column."""
        with torch.no_grad():
            out = self.forward_func(*inputs, *args)
        targets, multi = _targets(out, target, top_k, inputs[0].shape[0], func)
        grads = []
        acts = None
        for k in range(targets.shape[1]):
            column = targets[:, k]
            if out.ndim > 2:
                column_t: Any = [
                    tuple(int(i) for i in torch.unravel_index(c, out.shape[1:]))
                    for c in column
                ]
            else:
                column_t = column
            g, a = compute_layer_gradients_and_eval(
                self.forward_func, layer, inputs, column_t, args or None,
                device_ids=self.device_ids, attribute_to_layer_input=to_input,
                grad_kwargs=grad_kwargs,
            )
            grads.append(g[0])
            acts = a[0]
        return cast(Tensor, acts).detach(), torch.stack(grads, 1), targets, multi


@functools.lru_cache(maxsize=32)
def _bilinear_matrix(n_in: int, n_out: int) -> Tensor:
    """``(n_out, n_in)`` matrix of 1-D linear interpolation, ``align_corners=False``.

    The same source indices and weights as ``F.interpolate(..., "bilinear")``
    (``src = (dst + 0.5) * n_in / n_out - 0.5``, clamped at 0).
    """
    dst = torch.arange(n_out, dtype=torch.float64)
    src = ((dst + 0.5) * (n_in / n_out) - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    w1 = src - i0
    mat = torch.zeros(n_out, n_in, dtype=torch.float64)
    mat[torch.arange(n_out), i0] += 1 - w1
    mat[torch.arange(n_out), i1] += w1
    return mat


def _upsample(cam: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """``F.interpolate`` to ``size``; bilinear as two small matrix products.

    Bilinear interpolation is separable, ``R_h @ cam @ R_w.T``; with maps of
    7x7 going to 224x224 that is several times faster than the interpolation
    kernel, which matters when many maps per sample are asked for.
    """
    if mode == "bilinear" and cam.is_floating_point():
        rows = _bilinear_matrix(cam.shape[-2], size[0]).to(cam.device, cam.dtype)
        cols = _bilinear_matrix(cam.shape[-1], size[1]).to(cam.device, cam.dtype)
        return rows @ cam @ cols.T
    align = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(cam, size=size, mode=mode, **align)


def _finish(cam: Tensor, size: tuple[int, int], mode: str | None, normalize: bool) -> Tensor:
    """Upsample (``align_corners=False``) and optionally min-max scale each map."""
    if mode is not None and tuple(cam.shape[-2:]) != size:
        cam = _upsample(cam, size, mode)
    if normalize:
        flat = cam.flatten(2)
        lo = flat.amin(-1, keepdim=True)
        span = flat.amax(-1, keepdim=True) - lo
        flat = torch.where(span > 0, (flat - lo) / span.clamp_min(1e-30), torch.zeros_like(flat))
        cam = flat.view_as(cam)
    # A normal tensor (not an inference tensor), detached from any graph.
    return cam.detach().clone() if cam.is_inference() else cam.detach()


def _targets(out: Tensor, target: Any, top_k: int | None, n: int,
             func: str) -> tuple[Tensor, bool]:
    """Turn Captum's target forms (plus lists of lists and top_k) into (N, K) indices."""
    if out.ndim == 0 or out.shape[0] != n:
        raise ValueError(
            f"The 'forward_func' output must have the batch size ({n}) as its first "
            f"dimension in {func}. Got shape {tuple(out.shape)} instead."
        )
    scores = out.reshape(n, -1)
    m = scores.shape[1]
    dev = out.device
    space = tuple(out.shape[1:])
    accepted = (
        f"class indices in [0, {m}) (the model returns {m} scores per sample): an int, "
        f"a list or 1-D tensor of {n} ints (one per sample), a list of {n} lists or an "
        f"({n}, K) tensor (K classes per sample), or None (the predicted class)"
    )
    if out.ndim > 2:
        accepted = (
            f"an index tuple into the output's shape {space} for every sample, a list of "
            f"{n} such tuples, or an int / list of ints for the flattened output"
        )

    def bad(exc: type[Exception] = ValueError) -> Exception:
        return exc(f"The 'target' parameter of {func} must be {accepted}. "
                   f"Got {describe(target)} instead.")

    def idx(v: Any) -> int:
        if isinstance(v, Tensor) and v.numel() == 1 and not v.is_floating_point() \
                and v.dtype != torch.bool:
            v = int(v.item())
        if isinstance(v, bool) or not isinstance(v, Integral):
            raise bad(TypeError)
        if not 0 <= int(v) < m:
            raise bad()
        return int(v)

    def flat(tup: tuple[Any, ...]) -> int:
        if len(tup) != len(space):
            raise bad()
        pos = 0
        for v, size in zip(tup, space, strict=True):
            if isinstance(v, bool) or not isinstance(v, Integral) or not 0 <= v < size:
                raise bad(TypeError if not isinstance(v, Integral) else ValueError)
            pos = pos * size + int(v)
        return pos

    if top_k is not None:
        if out.ndim > 2:
            raise ValueError(
                f"The 'top_k' parameter of {func} must be None for outputs with more "
                f"than two dimensions (shape {tuple(out.shape)}). Got {top_k} instead."
            )
        if top_k > m:
            raise ValueError(
                f"The 'top_k' parameter of {func} must be an int in the range [1, {m}] "
                f"(the model returns {m} scores). Got {top_k} instead."
            )
        return scores.topk(top_k, dim=1).indices, True
    if target is None:
        if m == 1:
            return torch.zeros(n, 1, dtype=torch.long, device=dev), False
        if out.ndim > 2:
            raise bad()
        return scores.argmax(1, keepdim=True), False
    if isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise bad(TypeError)
        if target.numel() == 1 and target.ndim <= 1:
            return torch.full((n, 1), idx(target), dtype=torch.long, device=dev), False
        t = target.to(device=dev, dtype=torch.long)
        if t.ndim == 1 and t.shape[0] == n:
            t = t[:, None]
            multi = False
        elif t.ndim == 2 and t.shape[0] == n and t.shape[1] >= 1:
            multi = True
        else:
            raise bad()
        if bool(((t < 0) | (t >= m)).any()):
            raise bad()
        return t, multi
    if isinstance(target, tuple):  # Captum's index tuple into out.shape[1:]
        return torch.full((n, 1), flat(target), dtype=torch.long, device=dev), False
    if isinstance(target, list):
        if len(target) != n:
            raise bad()
        if out.ndim > 2:
            rows = [[flat(t)] if isinstance(t, tuple) else [idx(t)] for t in target]
            return torch.tensor(rows, dtype=torch.long, device=dev), False
        if all(isinstance(t, (list, tuple)) or (isinstance(t, Tensor) and t.ndim == 1)
               for t in target):
            rows = [[idx(v) for v in t] for t in target]
            if len({len(r) for r in rows}) != 1 or not rows[0]:
                raise bad()
            return torch.tensor(rows, dtype=torch.long, device=dev), True
        return torch.tensor([[idx(t)] for t in target], dtype=torch.long, device=dev), False
    return torch.full((n, 1), idx(target), dtype=torch.long, device=dev), False


class GradCam(_CamBase):
    """Grad-CAM (Selvaraju et al., 2017) as a Captum layer attribution.

    ``alpha[k, c] = mean_ij dy_k / dA_c[i, j]`` on the pre-softmax score
    ``y_k``; map ``= ReLU(sum_c alpha[k, c] * A_c)``, upsampled to the input.
    A drop-in for ``captum.attr.LayerGradCam(model, layer)`` with the layer
    found for you, several classes per call, and the exact one-forward
    shortcut on EfficientNets. Defaults that differ from ``LayerGradCam``:
    ``relu_attributions=True``, output upsampled (bilinear) to the input
    size, ``target=None`` means the predicted class, and the model is run in
    eval mode (``force_eval``).

    Parameters
    ----------
    forward_func : nn.Module or callable
        The model (or a function of the inputs returning scores; then give
        ``layer``, and there is no shortcut and no eval-mode switch).
    layer : nn.Module or str, optional
        The layer (or its name in ``model.named_modules()``). ``None``: the
        ``captum_effnet_target_layer`` plugin hook, else the generic rule on
        the first input (see :func:`~captum_effnet.attr.find_target_layer`).
        The chosen layer is in :attr:`layer` and logged once (``INFO`` on the
        ``captum_effnet.attr`` logger).
    device_ids : list of int, optional
        As in Captum, for ``DataParallel`` forward functions (that case uses
        Captum's own gradient gathering, one pass per target column).
    force_eval : bool, default True
        Run the model in eval mode for the call and restore every
        submodule's mode afterwards (batch-norm in train mode couples the
        samples of a batch and updates its running statistics).

    Examples
    --------
    >>> import torch, torchvision
    >>> from captum_effnet.attr import GradCam
    >>> net = torchvision.models.efficientnet_b0(num_classes=10)
    >>> cam = GradCam(net)
    >>> cam.layer is net.features[-1]
    True
    >>> x = torch.rand(2, 3, 64, 64)
    >>> cam.attribute(x, target=[3, 7]).shape
    torch.Size([2, 1, 64, 64])
    >>> cam.attribute(x, top_k=3).shape                  # three classes, one forward
    torch.Size([2, 3, 64, 64])
    >>> cam.last_targets.shape
    torch.Size([2, 3])
    """

    _display_name: ClassVar[str] = "Grad-CAM"

    def _weights(self, acts: Tensor, grads: Tensor, hw: int) -> tuple[str, Tensor]:
        return "channel", grads.mean((-2, -1))


class GradCamPlusPlus(_CamBase):
    """Grad-CAM++ (Chattopadhay et al., 2018), equation 19 of the paper.

    ``a_ij = g^2 / (2 g^2 + sum_ij(A) g^3)`` (0 where ``g = 0``),
    ``alpha_c = sum_ij ReLU(g_ij) a_ij``, map ``= ReLU(sum_c alpha_c A_c)``,
    with ``g`` the gradient of the pre-softmax score (the paper's
    exponential-output closed form, as in pytorch-grad-cam).

    Parameters
    ----------
    forward_func, layer, device_ids, force_eval
        As for :class:`GradCam`.
    eps : float, default 0.0
        Added to the denominator. pytorch-grad-cam adds ``1e-6``, which is not
        small next to ``g^2`` at an EfficientNet's last layer (``g ~ 1e-3``)
        and changes the map; the default 0 is the paper's formula (a zero
        denominator gives ``a_ij = 0``).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from captum_effnet.attr import GradCamPlusPlus
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    >>> GradCamPlusPlus(net).attribute(torch.rand(2, 3, 16, 16), target=[0, 3]).shape
    torch.Size([2, 1, 16, 16])
    """

    _display_name: ClassVar[str] = "Grad-CAM++"

    def __init__(self, forward_func: Any, layer: nn.Module | str | None = None,
                 device_ids: list[int] | None = None, *, force_eval: bool = True,
                 eps: float = 0.0) -> None:
        super().__init__(forward_func, layer, device_ids, force_eval=force_eval)
        self.eps = _check_eps(eps, type(self).__name__)

    def _weights(self, acts: Tensor, grads: Tensor, hw: int) -> tuple[str, Tensor]:
        g2 = grads * grads
        g3 = g2 * grads
        total = acts.sum((2, 3))[:, None, :, None, None]
        denom = 2 * g2 + total * g3 + self.eps
        ok = (grads != 0) & (denom != 0)
        aij = torch.where(ok, g2 / torch.where(ok, denom, torch.ones_like(denom)),
                          torch.zeros_like(g2))
        return "channel", _spatial_sum(F.relu(grads) * aij, hw)


class XGradCam(_CamBase):
    """XGrad-CAM (Fu et al., 2020): ``alpha_c = sum_ij g_ij A_ij / (sum_ij A_ij + eps)``.

    Parameters
    ----------
    forward_func, layer, device_ids, force_eval
        As for :class:`GradCam`.
    eps : float, default 1e-7
        Added to the activation sum (pytorch-grad-cam's value).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from captum_effnet.attr import XGradCam
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    >>> XGradCam(net).attribute(torch.rand(2, 3, 16, 16), target=[0, 3]).shape
    torch.Size([2, 1, 16, 16])
    """

    _display_name: ClassVar[str] = "XGrad-CAM"

    def __init__(self, forward_func: Any, layer: nn.Module | str | None = None,
                 device_ids: list[int] | None = None, *, force_eval: bool = True,
                 eps: float = 1e-7) -> None:
        super().__init__(forward_func, layer, device_ids, force_eval=force_eval)
        self.eps = _check_eps(eps, type(self).__name__)

    def _weights(self, acts: Tensor, grads: Tensor, hw: int) -> tuple[str, Tensor]:
        total = acts.sum((2, 3))[:, None]  # (N, 1, C)
        if grads.shape[-2:] == (1, 1):
            num = grads[..., 0, 0] * total
        else:
            num = torch.einsum("nkchw,nchw->nkc", grads, acts)
        return "channel", num / (total + self.eps)


class LayerCam(_CamBase):
    """LayerCAM (Jiang et al., 2021): map ``= ReLU(sum_c ReLU(g_c) * A_c)``, per pixel.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from captum_effnet.attr import LayerCam
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    >>> LayerCam(net).attribute(torch.rand(2, 3, 16, 16), target=[0, 3]).shape
    torch.Size([2, 1, 16, 16])
    """

    _display_name: ClassVar[str] = "LayerCAM"

    def _weights(self, acts: Tensor, grads: Tensor, hw: int) -> tuple[str, Tensor]:
        return "pixel", F.relu(grads)


class HiResCam(_CamBase):
    """HiResCAM (Draelos & Carin, 2020): map ``= ReLU(sum_c g_c * A_c)``, per pixel.

    Equal to Grad-CAM when the gradient is the same at every position (the
    global-average-pool shortcut), faithful to the gradient elsewhere.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from captum_effnet.attr import HiResCam
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    >>> HiResCam(net).attribute(torch.rand(2, 3, 16, 16), target=[0, 3]).shape
    torch.Size([2, 1, 16, 16])
    """

    _display_name: ClassVar[str] = "HiResCAM"

    def _weights(self, acts: Tensor, grads: Tensor, hw: int) -> tuple[str, Tensor]:
        return "pixel", grads


def _check_eps(eps: Any, cls: str) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (
        math.isfinite(eps) and eps >= 0
    ):
        exc = TypeError if not isinstance(eps, (int, float)) or isinstance(eps, bool) \
            else ValueError
        raise exc(f"The 'eps' parameter of {cls} must be a finite float >= 0. "
                  f"Got {eps!r} instead.")
    return float(eps)


#: Registered through the built-in plugin (``captum_effnet._builtin``).
BUILTIN_ATTRIBUTIONS: dict[str, type] = {
    "gradcam": GradCam,
    "gradcam++": GradCamPlusPlus,
    "xgradcam": XGradCam,
    "layercam": LayerCam,
    "hirescam": HiResCam,
    "guided_backprop": GuidedBackprop,
    "guided_gradcam": GuidedGradCam,
}
