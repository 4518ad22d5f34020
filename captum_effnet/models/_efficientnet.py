"""Builders: the compound-scaling formula and the published variants.

Every model is a :class:`torchvision.models.EfficientNet` built from
torchvision's ``MBConvConfig`` and blocks (Lite: :class:`~._lite.LiteMBConv`),
so ``features[-1]`` is the last convolution block before global average
pooling, then ``avgpool`` and ``classifier = Sequential(Dropout, Linear)``.
B0..B7 have torchvision's exact parameters and ``state_dict`` keys. Each model
carries a plain ``dict`` of metadata as ``model.meta``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any, Final

import torch
from torch import nn
from torchvision.models import EfficientNet
from torchvision.models.efficientnet import MBConv, MBConvConfig

from .._validation import check_int, check_real, param_error
from ._lite import LiteMBConv, conv_bn_act
from ._profile import estimate_cost
from ._scaling import VARIANTS, CompoundScaling, StagePlan, check_phi, stage_plan
from ._weights import (
    LITE0_IMAGENET,
    fetch_weights,
    load_weights,
    torchvision_weight_names,
)

__all__ = ["BUILTIN_MODELS", "efficientnet"]

_V2: Final = {"efficientnet_v2_s": 384, "efficientnet_v2_m": 480, "efficientnet_v2_l": 480}
_V2_DROPOUT: Final = {"efficientnet_v2_s": 0.2, "efficientnet_v2_m": 0.3,
                      "efficientnet_v2_l": 0.4}


def _init_conv(conv: nn.Conv2d) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")  # torchvision's EfficientNet init
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _replace_stem(model: EfficientNet, in_channels: int) -> None:
    """Give the stem convolution ``in_channels`` inputs, keeping its class and settings."""
    old = model.features[0][0]
    new = type(old)(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                    old.dilation, old.groups, old.bias is not None)
    _init_conv(new)
    model.features[0][0] = new


def _build_plan(plan: StagePlan, *, dropout: float, stochastic_depth_prob: float,
                num_classes: int, in_channels: int, bn_eps: float,
                bn_momentum: float) -> EfficientNet:
    lite = plan.family == "lite"
    block: Callable[..., nn.Module] = LiteMBConv if lite else MBConv
    setting = [MBConvConfig(st.expand_ratio, st.kernel, st.stride, st.in_channels,
                            st.out_channels, st.layers, block=block) for st in plan.stages]
    norm_layer = partial(nn.BatchNorm2d, eps=bn_eps, momentum=bn_momentum)
    model = EfficientNet(setting, dropout, stochastic_depth_prob=stochastic_depth_prob,
                         num_classes=num_classes, norm_layer=norm_layer,
                         last_channel=plan.head if lite else None)
    if lite:
        stem = conv_bn_act(in_channels, plan.stem, 3, stride=2, norm_layer=norm_layer)
        _init_conv(stem[0])
        model.features[0] = stem
        model.features[-1][2] = nn.ReLU6(inplace=True)  # head: Conv2dNormActivation
    elif in_channels != 3:
        _replace_stem(model, in_channels)
    return model


def _total_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not POSIX
        return None


def _on_meta_device() -> bool:
    return torch.empty(()).device.type == "meta"


def _check_fits(params: int, phi: float, func: str) -> None:
    total = _total_memory()
    if total is None or _on_meta_device():
        return
    nbytes = params * torch.empty((), dtype=torch.get_default_dtype()).element_size()
    if nbytes > total:
        raise param_error(
            "phi", func,
            f"small enough for the model to fit in memory: phi={phi:g} gives about "
            f"{params:.3g} parameters, {nbytes / 2**30:,.1f} GiB in "
            f"{str(torch.get_default_dtype()).removeprefix('torch.')}, but this machine has "
            f"{total / 2**30:,.1f} GiB (build it under `with torch.device('meta'):` to "
            f"inspect it without allocating)", phi)


def _check_common(func: str, num_classes: Any, in_channels: Any, dropout: Any,
                  stochastic_depth_prob: Any) -> tuple[int | None, int, float | None, float]:
    if num_classes is not None:
        num_classes = check_int(num_classes, name="num_classes", func=func, low=1)
    in_channels = check_int(in_channels, name="in_channels", func=func, low=1)
    if dropout is not None:
        dropout = check_real(dropout, name="dropout", func=func, low=0.0, high=1.0,
                             closed="left")
    sd = check_real(stochastic_depth_prob, name="stochastic_depth_prob", func=func, low=0.0,
                    high=1.0, closed="left")
    return num_classes, in_channels, dropout, sd


def _finish(model: EfficientNet, meta: dict[str, Any], loaded: Any, name: str) -> EfficientNet:
    categories = None
    if loaded is not None:
        if load_weights(model, loaded, model_name=name):
            categories = loaded.categories
        if loaded.resolution is not None:
            meta["resolution"] = int(loaded.resolution)
    meta["weights"] = None if loaded is None else loaded.label
    meta["categories"] = categories
    model.meta = meta
    return model


def _default_dropout(phi: float) -> float:
    return min(0.5, max(0.2, 0.2 + 0.05 * phi))


def efficientnet(phi: float, *, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15,
                 num_classes: int | None = None, in_channels: int = 3,
                 dropout: float | None = None, stochastic_depth_prob: float = 0.2,
                 weights: str | os.PathLike[str] | None = None,
                 base_resolution: int = 224, resolution_multiple: int = 8) -> EfficientNet:
    """An EfficientNet scaled from B0 by the compound coefficient ``phi``.

    depth = ``alpha ** phi``, width = ``beta ** phi``, resolution =
    ``base_resolution * gamma ** phi`` (rounded to a multiple of 8); channels
    are rounded with torchvision's ``_make_divisible(c * width, 8)`` and
    layers with ``ceil(n * depth)`` (see :class:`CompoundScaling`). With the
    default coefficients the cost grows about ``1.92 ** phi``. Any finite
    ``phi`` works: ``phi = -2`` gives a 3.46 M-parameter model costing 0.17 GMACs at
    its 168 px (less on smaller inputs), for quick tests; fractional values
    interpolate.

    Parameters
    ----------
    phi : float
        Compound coefficient.
    alpha, beta, gamma : float, default 1.2, 1.1, 1.15
        Depth, width and resolution bases (positive).
    num_classes : int, optional
        Classifier outputs; default 1000, or the checkpoint's when ``weights``
        is given.
    in_channels : int, default 3
        Input channels (the stem convolution is rebuilt for other values).
    dropout : float, optional
        Dropout before the classifier. Default ``0.2 + 0.05 * phi`` clipped to
        [0.2, 0.5], close to the released B0..B7 values.
    stochastic_depth_prob : float, default 0.2
        Largest stochastic-depth drop probability (torchvision's default).
    weights : str or path-like, optional
        A local checkpoint to load (no published weights exist for arbitrary
        ``phi``; use :func:`captum_effnet.get_model` for B0..B7).
    base_resolution : int, default 224
        Resolution at ``phi = 0``.
    resolution_multiple : int, default 8
        The scaled resolution is rounded to the nearest multiple of this
        (use a smaller one for small images).

    Returns
    -------
    torchvision.models.EfficientNet
        With ``model.meta`` holding ``name``, ``phi``, ``depth``, ``width``,
        ``resolution``, ``alpha``, ``beta``, ``gamma``, ``dropout``,
        ``weights`` and ``categories``.

    Raises
    ------
    ValueError
        Non-finite ``phi``, a ``phi`` whose parameters would not fit in this
        machine's memory (checked in closed form before allocating), non-positive
        coefficients, ``in_channels < 1``, a bad checkpoint.
    TypeError
        Wrong argument types.

    Examples
    --------
    >>> import torch
    >>> from captum_effnet.models import efficientnet
    >>> model = efficientnet(-2, num_classes=10).eval()
    >>> model.meta["resolution"], round(model.meta["depth"], 3), round(model.meta["width"], 3)
    (168, 0.694, 0.826)
    >>> model(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 10])
    """
    func = "efficientnet"
    phi = check_phi(phi, func)
    scaling = CompoundScaling(alpha, beta, gamma, base_resolution, resolution_multiple)
    num_classes, in_channels, dropout, sd = _check_common(
        func, num_classes, in_channels, dropout, stochastic_depth_prob)
    depth, width, resolution = scaling.multipliers(phi)
    plan = stage_plan("efficientnet", width, depth)
    name = f"efficientnet(phi={phi:g})"
    loaded = fetch_weights(name, weights, accepted=(), func=func)
    n_out = num_classes or (loaded.num_classes if loaded else None) or 1000
    cost = estimate_cost(plan, resolution, num_classes=n_out, in_channels=in_channels)
    _check_fits(cost.params, phi, func)
    drop = _default_dropout(phi) if dropout is None else dropout
    model = _build_plan(plan, dropout=drop, stochastic_depth_prob=sd, num_classes=n_out,
                        in_channels=in_channels, bn_eps=1e-5, bn_momentum=0.1)
    meta = {"name": name, "family": "efficientnet", "phi": phi, "depth": depth,
            "width": width, "resolution": resolution, "alpha": scaling.alpha,
            "beta": scaling.beta, "gamma": scaling.gamma, "dropout": drop,
            "num_classes": n_out, "in_channels": in_channels}
    return _finish(model, meta, loaded, name)


def _accepted(name: str) -> tuple[str, ...]:
    if name == "efficientnet_lite0":
        return (LITE0_IMAGENET,)
    return torchvision_weight_names(name)


def _variant_builder(name: str) -> Callable[..., nn.Module]:
    variant = VARIANTS[name]
    accepted = _accepted(name)

    def builder(*, weights: Any = None, num_classes: int | None = None,
                dropout: float | None = None, stochastic_depth_prob: float = 0.2,
                in_channels: int = 3, progress: bool = True) -> EfficientNet:
        nc, c_in, drop, sd = _check_common(name, num_classes, in_channels, dropout,
                                           stochastic_depth_prob)
        loaded = fetch_weights(name, weights, accepted=accepted, func=name, progress=progress)
        n_out = nc or (loaded.num_classes if loaded else None) or 1000
        plan = stage_plan(variant.family, variant.width, variant.depth)
        drop = variant.dropout if drop is None else drop
        model = _build_plan(plan, dropout=drop, stochastic_depth_prob=sd, num_classes=n_out,
                            in_channels=c_in, bn_eps=variant.bn_eps,
                            bn_momentum=variant.bn_momentum)
        meta = {"name": name, "family": variant.family, "phi": None, "depth": variant.depth,
                "width": variant.width, "resolution": variant.resolution, "alpha": None,
                "beta": None, "gamma": None, "dropout": drop, "num_classes": n_out,
                "in_channels": c_in}
        return _finish(model, meta, loaded, name)

    kind = "EfficientNet-Lite" if variant.family == "lite" else "EfficientNet"
    _document(builder, name, f"{kind} {name.rsplit('_', 1)[1].upper()} (width {variant.width}, "
              f"depth {variant.depth}, {variant.resolution} px)", accepted)
    return builder


def _v2_builder(name: str) -> Callable[..., nn.Module]:
    import torchvision.models as tvm

    accepted = _accepted(name)

    def builder(*, weights: Any = None, num_classes: int | None = None,
                dropout: float | None = None, stochastic_depth_prob: float = 0.2,
                in_channels: int = 3, progress: bool = True) -> EfficientNet:
        nc, c_in, drop, sd = _check_common(name, num_classes, in_channels, dropout,
                                           stochastic_depth_prob)
        loaded = fetch_weights(name, weights, accepted=accepted, func=name, progress=progress)
        n_out = nc or (loaded.num_classes if loaded else None) or 1000
        drop = _V2_DROPOUT[name] if drop is None else drop
        model = getattr(tvm, name)(weights=None, num_classes=n_out, dropout=drop,
                                   stochastic_depth_prob=sd)
        if c_in != 3:
            _replace_stem(model, c_in)
        meta = {"name": name, "family": "efficientnet_v2", "phi": None, "depth": None,
                "width": None, "resolution": _V2[name], "alpha": None, "beta": None,
                "gamma": None, "dropout": drop, "num_classes": n_out, "in_channels": c_in}
        return _finish(model, meta, loaded, name)

    _document(builder, name, f"EfficientNetV2-{name[-1].upper()} (torchvision's)", accepted)
    return builder


def _document(builder: Callable[..., Any], name: str, title: str,
              accepted: tuple[str, ...]) -> None:
    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = (
        f"{title}.\n\n"
        f"Keyword arguments: ``weights`` (None, {', '.join(map(repr, accepted))} or a "
        "checkpoint path), ``num_classes``, ``dropout``, ``stochastic_depth_prob``, "
        "``in_channels``, ``progress``. Returns a ``torchvision.models.EfficientNet`` "
        "with ``model.meta``.\n"
    )


def _info(name: str) -> dict[str, Any]:
    if name in _V2:
        return {"resolution": _V2[name], "weights": _accepted(name),
                "description": f"EfficientNetV2-{name[-1].upper()} (torchvision architecture)"}
    v = VARIANTS[name]
    kind = "EfficientNet-Lite (no SE, ReLU6, TF padding)" if v.family == "lite" else (
        "EfficientNet (torchvision architecture)")
    return {"resolution": v.resolution, "weights": _accepted(name),
            "description": f"{kind}, width {v.width}, depth {v.depth}"}


#: Every built-in model: ``name -> (builder, info)``; ``info`` has ``resolution``,
#: ``weights`` (accepted weight names) and ``description``.
BUILTIN_MODELS: Final[dict[str, tuple[Callable[..., nn.Module], dict[str, Any]]]] = {
    **{n: (_variant_builder(n), _info(n)) for n in VARIANTS},
    **{n: (_v2_builder(n), _info(n)) for n in _V2},
}

