"""Target-layer resolution for the CAM family.

Two rules, in order:

1. the plugins' answer to the ``captum_effnet_target_layer`` hook (the
   built-in plugin answers ``model.features[-1]`` for every torchvision
   ``EfficientNet``, which covers every model this package builds);
2. the generic rule: run the model once on (the first sample of) the actual
   input with a forward hook on every submodule and take the *last module to
   finish* whose output is a 4-D tensor ``(N, C, H, W)`` with ``H * W > 1``.
   Modules that run more than once in one forward (a ``ReLU`` shared by the
   two convolutions of a ResNet block, say) are skipped: their hook would see
   several different tensors.

The same probe pass also records what runs after the layer, which is how
:class:`~captum_effnet.attr.GradCam` decides whether the exact
"global-average-pool + linear" shortcut applies (see :func:`_linear_head`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["find_target_layer"]

logger = logging.getLogger("captum_effnet.attr")

#: Leaf modules that may sit between the layer and the final ``nn.Linear``
#: for the exact shortcut to apply (all of them are the identity on the
#: pooled vector in eval mode, or they are the global average pool itself).
_HEAD_PASSTHROUGH: tuple[type[nn.Module], ...] = (
    nn.Flatten,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


@dataclass
class _Trace:
    """What one probe forward saw, in completion order."""

    order: list[nn.Module] = field(default_factory=list)
    shapes: dict[int, tuple[int, ...] | None] = field(default_factory=dict)
    calls: dict[int, int] = field(default_factory=dict)
    outputs: dict[int, Any] = field(default_factory=dict)
    root_output: Any = None


def _model_of(forward_func: Any) -> nn.Module | None:
    """The ``nn.Module`` behind ``forward_func`` (itself, or a bound method's owner)."""
    if isinstance(forward_func, nn.Module):
        return forward_func
    owner = getattr(forward_func, "__self__", None)
    if isinstance(owner, nn.Module) and getattr(forward_func, "__name__", "") in (
        "forward",
        "__call__",
    ):
        return owner
    return None


def _module_name(model: nn.Module | None, layer: nn.Module) -> str:
    if model is not None:
        for name, mod in model.named_modules():
            if mod is layer:
                return name or "<model itself>"
    return f"<{type(layer).__name__} outside the model>"


@contextmanager
def _eval_mode(model: nn.Module | None, enabled: bool = True) -> Iterator[None]:
    """Eval mode inside the block; afterwards every submodule's flag as it was.

    Nothing is touched when the model is already in eval mode (the common
    case), so the per-call cost is one walk over the modules.
    """
    if model is None or not enabled:
        yield
        return
    training = [m for m in model.modules() if m.training]
    if training:
        model.eval()  # honours train() overrides
    try:
        yield
    finally:
        for mod in training:
            object.__setattr__(mod, "training", True)  # what Module.train sets


def _probe(
    model: nn.Module,
    inputs: tuple[Tensor, ...],
    additional_forward_args: tuple[Any, ...],
    *,
    keep_outputs: bool = False,
) -> _Trace:
    """One forward (eval mode, ``inference_mode``) with a hook on every module.

    The batch is cut to its first sample when there are no additional
    arguments (whose batch layout is unknown). Modes are restored exactly and
    every hook is removed, also when the forward raises.
    """
    trace = _Trace()
    root = model

    def hook(mod: nn.Module, _inp: Any, out: Any) -> None:
        key = id(mod)
        trace.calls[key] = trace.calls.get(key, 0) + 1
        trace.order.append(mod)
        trace.shapes[key] = tuple(out.shape) if isinstance(out, Tensor) else None
        if keep_outputs:
            trace.outputs[key] = out

    if not additional_forward_args:
        inputs = tuple(x[:1] for x in inputs)
    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not root]
    try:
        with _eval_mode(model), torch.inference_mode():
            trace.root_output = model(*inputs, *additional_forward_args)
    finally:
        for h in handles:
            h.remove()
    return trace


def _generic_layer(model: nn.Module, trace: _Trace) -> nn.Module | None:
    for mod in reversed(trace.order):
        shape = trace.shapes.get(id(mod))
        if (
            shape is not None
            and len(shape) == 4
            and shape[2] * shape[3] > 1
            and trace.calls.get(id(mod)) == 1
        ):
            return mod
    return None


def _linear_head(trace: _Trace, layer: nn.Module) -> nn.Linear | None:
    """The final ``nn.Linear`` if only GAP + Linear (+ identities) follow ``layer``.

    Structural half of the shortcut test; the numerical half (the model's
    output equals ``Linear(A.mean((2, 3)))`` on the actual batch) is done on
    every call. Needs a trace made with ``keep_outputs=True``.
    """
    if trace.calls.get(id(layer)) != 1:
        return None
    try:
        start = next(i for i, m in enumerate(trace.order) if m is layer)
    except StopIteration:
        return None
    shape = trace.shapes.get(id(layer))
    if shape is None or len(shape) != 4:
        return None
    after = [m for m in trace.order[start + 1 :] if not any(True for _ in m.children())]
    if not after or not isinstance(after[-1], nn.Linear):
        return None
    linear = after[-1]
    pools = 0
    for mod in after[:-1]:
        if isinstance(mod, nn.AdaptiveAvgPool2d) and mod.output_size in (1, (1, 1)):
            pools += 1
        elif not isinstance(mod, _HEAD_PASSTHROUGH):
            return None
    if pools > 1 or linear.in_features != shape[1]:
        return None
    if trace.outputs.get(id(linear)) is not trace.root_output:
        return None
    return linear


def _check_finite(x: Tensor, name: str, func: str) -> None:
    """Refuse NaN or infinite values: every map computed from them would be NaN."""
    if x.is_meta or x.numel() == 0:
        return
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        raise ValueError(
            f"The {name!r} parameter of {func} must hold finite values (no NaN or inf): "
            f"a map computed from them would be NaN. Got {int(bad.sum())} non-finite "
            f"value(s) of {x.numel()} instead."
        )


def _check_finite_result(result: Tensor, func: str, param: str = "forward_func") -> None:
    """Refuse to return a NaN map: the inputs were finite, so the model is at fault."""
    bad = ~torch.isfinite(result)
    if bool(bad.any()):
        raise ValueError(
            f"The {param!r} parameter of {func} must give finite outputs, layer "
            f"activations and gradients for finite inputs. Got {int(bad.sum())} NaN or "
            f"inf value(s) of {result.numel()} in the map instead (check the model's "
            "weights and buffers with torch.isfinite)."
        )


def _as_inputs(inputs: Any, func: str) -> tuple[Tensor, ...]:
    """Captum's input forms (a tensor or a tuple of tensors), checked for images."""
    tup = inputs if isinstance(inputs, tuple) else (inputs,)
    if not tup:
        raise ValueError(
            f"The 'inputs' parameter of {func} must be a 4-D float tensor (N, C, H, W) "
            "or a non-empty tuple of such tensors. Got () instead."
        )
    for x in tup:
        if not isinstance(x, Tensor):
            raise TypeError(
                f"The 'inputs' parameter of {func} must be a torch.Tensor or a tuple of "
                f"tensors. Got {type(x).__name__} instead."
            )
        if not (x.is_floating_point() or x.is_complex()):
            raise TypeError(
                f"The 'inputs' parameter of {func} must be a floating-point tensor "
                f"(float16/bfloat16/float32/float64). Got dtype {x.dtype} instead; "
                "convert with x.float() (and normalise as the model expects)."
            )
        if x.ndim != 4:
            hint = " (add the batch dimension with x.unsqueeze(0))" if x.ndim == 3 else ""
            raise ValueError(
                f"The 'inputs' parameter of {func} must be a 4-D tensor (N, C, H, W)"
                f"{hint}. Got a tensor of shape {tuple(x.shape)} instead."
            )
        if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
            raise ValueError(
                f"The 'inputs' parameter of {func} must hold at least one image of at "
                f"least one pixel. Got a tensor of shape {tuple(x.shape)} instead."
            )
        _check_finite(x, "inputs", func)
    if len({x.shape[0] for x in tup}) > 1:
        raise ValueError(
            f"The 'inputs' parameter of {func} must hold tensors with the same batch "
            f"size. Got shapes {[tuple(x.shape) for x in tup]} instead."
        )
    return tup


def _as_args(additional_forward_args: Any) -> tuple[Any, ...]:
    if additional_forward_args is None:
        return ()
    if isinstance(additional_forward_args, tuple):
        return additional_forward_args
    return (additional_forward_args,)


def _check_channels(model: nn.Module | None, inputs: Sequence[Tensor], func: str) -> None:
    """Compare the first input's dtype and channels with the model's.

    The dtype must be the one of the model's first floating-point parameter
    (Conv2d refuses a mismatch deep inside torch).

    The stem is the first registered module that holds parameters, and only
    when it is an ``nn.Conv2d`` (as in every torchvision CNN); other layouts
    are not second-guessed.
    """
    if model is None or len(inputs) != 1:
        return
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    if param is not None and inputs[0].dtype != param.dtype:
        raise TypeError(
            f"The 'inputs' parameter of {func} must have the model's dtype {param.dtype} "
            f"(convert with x.to({param.dtype}), or the model with "
            f"model.to({inputs[0].dtype})). Got dtype {inputs[0].dtype} instead."
        )
    first = next((m for m in model.modules()
                  if next(m.parameters(recurse=False), None) is not None), None)
    if not isinstance(first, nn.Conv2d):
        return
    channels = inputs[0].shape[1]
    if channels != first.in_channels:
        raise ValueError(
            f"The 'inputs' parameter of {func} must have {first.in_channels} channels "
            f"(the model's first Conv2d takes {first.in_channels}). Got a tensor of "
            f"shape {tuple(inputs[0].shape)} ({channels} channels) instead."
        )


def _resolve(
    model: nn.Module,
    inputs: tuple[Tensor, ...] | None,
    additional_forward_args: tuple[Any, ...],
    func: str,
) -> tuple[nn.Module, str, _Trace | None]:
    """The layer, how it was chosen, and the probe trace when one was run."""
    from .._plugins import target_layer_from_plugins

    layer = target_layer_from_plugins(model)
    if layer is not None:
        return layer, "the captum_effnet_target_layer plugin hook", None
    if inputs is None:
        raise ValueError(
            f"The 'inputs' parameter of {func} must be an example batch when no plugin "
            f"names a layer for {type(model).__name__} (the generic rule runs the model "
            "on it). Got None instead."
        )
    trace = _probe(model, inputs, additional_forward_args, keep_outputs=True)
    layer = _generic_layer(model, trace)
    if layer is None:
        seen = sorted(
            {f"{type(m).__name__}->{trace.shapes[id(m)]}" for m in trace.order}
        )[:8]
        raise ValueError(
            f"The 'model' parameter of {func} must contain a module, run once per "
            "forward, whose output is a 4-D tensor (N, C, H, W) with H*W > 1 on inputs "
            f"of shape {[tuple(x.shape) for x in inputs]}. Got a "
            f"{type(model).__name__} with no such module (outputs seen: {seen}) "
            "instead; pass layer= explicitly."
        )
    return layer, "the generic rule (last 4-D module with spatial size > 1)", trace


def find_target_layer(
    model: nn.Module,
    inputs: Tensor | tuple[Tensor, ...] | None = None,
    *,
    additional_forward_args: Any = None,
) -> nn.Module:
    """Find the layer Grad-CAM should use for ``model``.

    First the ``captum_effnet_target_layer`` plugin hook is asked (the
    built-in plugin answers the last feature block, ``model.features[-1]``,
    of every torchvision ``EfficientNet``, V1, V2 and lite); when no plugin
    answers, the generic rule runs the model once on the first sample of
    ``inputs`` (eval mode, ``torch.inference_mode``, hooks removed and modes
    restored afterwards) and returns the last module to finish whose output is
    4-D ``(N, C, H, W)`` with ``H * W > 1`` and which runs once per forward.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier.
    inputs : Tensor or tuple of Tensor, optional
        An example batch ``(N, C, H, W)``; needed only when no plugin answers.
    additional_forward_args : Any, optional
        Extra positional arguments of ``model.forward``, as in Captum.

    Returns
    -------
    torch.nn.Module
        A submodule of ``model``.

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Module``.
    ValueError
        If no plugin answers and ``inputs`` is missing, or no module qualifies.

    Examples
    --------
    >>> import torch, torchvision
    >>> from captum_effnet.attr import find_target_layer
    >>> net = torchvision.models.efficientnet_b0()
    >>> find_target_layer(net) is net.features[-1]       # plugin answer
    True
    >>> res = torchvision.models.resnet18()
    >>> find_target_layer(res, torch.rand(1, 3, 64, 64)) is res.layer4   # generic rule
    True
    """
    func = "find_target_layer"
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"The 'model' parameter of {func} must be a torch.nn.Module. "
            f"Got {type(model).__name__} instead."
        )
    tup = None if inputs is None else _as_inputs(inputs, func)
    if tup is not None:
        _check_channels(model, tup, func)
    layer, how, _ = _resolve(model, tup, _as_args(additional_forward_args), func)
    logger.info("%s: layer %r chosen by %s", func, _module_name(model, layer), how)
    return layer
