"""Preprocessing that matches a model's weights.

All transforms are torchvision's ``ImageClassification`` preset (the object
``Weights.transforms()`` returns): resize the shorter side, centre-crop,
scale to [0, 1], normalise. It accepts a ``PIL.Image`` or a ``(C, H, W)`` /
``(N, C, H, W)`` tensor (``uint8`` in 0..255 or float in [0, 1]).

- torchvision weights (B0..B7, V2): exactly that weight's own transforms;
  a name without ``weights`` gets its ``DEFAULT`` weights' transforms.
- EfficientNet-Lite (the TF-trained weights): resize to ``resolution + 32``,
  crop ``resolution``, bicubic, then ``(x - 127) / 128`` on 0..255 RGB, written
  as ``mean = 127/255``, ``std = 128/255`` on [0, 1].
- anything else (``efficientnet(phi)``, local checkpoints of B-models):
  ImageNet mean/std, crop at ``model.meta["resolution"]`` after resizing to
  ``resolution * 256 / 224``, bicubic.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms._presets import ImageClassification

from .._validation import check_choice, check_type, param_error
from ._weights import _describe_accepted, _resolve_torchvision

__all__ = ["LITE_MEAN", "LITE_STD", "get_transforms"]

#: (x - 127) / 128 on 0..255, expressed on [0, 1] images.
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3


def _lite(resolution: int) -> ImageClassification:
    return ImageClassification(crop_size=resolution, resize_size=resolution + 32, mean=LITE_MEAN,
                               std=LITE_STD, interpolation=InterpolationMode.BICUBIC)


def _imagenet(resolution: int) -> ImageClassification:
    return ImageClassification(crop_size=resolution, resize_size=round(resolution * 256 / 224),
                               interpolation=InterpolationMode.BICUBIC)


def get_transforms(name_or_model: str | nn.Module, weights: Any = None) -> nn.Module:
    """The preprocessing that matches a model and its weights.

    Parameters
    ----------
    name_or_model : str or torch.nn.Module
        A built-in name (``"efficientnet_lite0"``) or a model built by this
        package (it reads ``model.meta``).
    weights : str, optional
        The weights to match; defaults to the model's (``model.meta["weights"]``)
        or, for a name, ``"DEFAULT"`` for torchvision models and ``"imagenet"``
        for Lite.

    Returns
    -------
    torch.nn.Module
        A callable taking a PIL image or an image tensor and returning a
        normalised float tensor of shape ``(3, resolution, resolution)``
        (or ``(N, 3, ...)``).

    Raises
    ------
    ValueError
        Unknown name, or weights that do not exist for that model.
    TypeError
        Neither a name nor a model with ``meta``.

    Examples
    --------
    >>> import torch
    >>> from captum_effnet.models import get_transforms
    >>> t = get_transforms("efficientnet_lite0")
    >>> x = torch.full((3, 300, 400), 255, dtype=torch.uint8)
    >>> y = t(x)
    >>> tuple(y.shape), round(float(y.max()), 4)  # (255 - 127) / 128
    ((3, 224, 224), 1.0)
    >>> get_transforms("efficientnet_b0").crop_size
    [224]
    """
    from ._efficientnet import BUILTIN_MODELS

    func = "get_transforms"
    explicit = weights is not None
    check_type(name_or_model, (str, nn.Module), name="name_or_model", func=func,
               expected="a built-in model name or a model built by captum_effnet")
    if isinstance(name_or_model, str):
        check_choice(name_or_model, sorted(BUILTIN_MODELS), name="name_or_model", func=func)
        name = name_or_model
        info = BUILTIN_MODELS[name][1]
        resolution = int(info["resolution"])
        family = "lite" if "lite" in name else "efficientnet"
        if weights is None:
            weights = "imagenet" if name == "efficientnet_lite0" else (
                "DEFAULT" if info["weights"] else None)
        accepted = tuple(info["weights"])
    else:
        meta = getattr(name_or_model, "meta", None)
        if not isinstance(meta, dict) or "name" not in meta:
            raise param_error("name_or_model", func, "a built-in model name or a model built "
                              "by captum_effnet (one with a 'meta' dict)",
                              type(name_or_model).__name__, exc=TypeError)
        name = str(meta["name"])
        resolution = int(meta["resolution"])
        family = str(meta.get("family", "efficientnet"))
        if weights is None:
            weights = meta.get("weights")
        accepted = tuple(BUILTIN_MODELS[name][1]["weights"]) if name in BUILTIN_MODELS else ()
    if weights is not None:
        member = _resolve_torchvision(name, weights)
        if member is not None:
            return member.transforms()
        known = isinstance(weights, str) and weights in accepted
        is_file = isinstance(weights, (str, os.PathLike)) and Path(weights).is_file()
        if explicit and not (known or is_file):
            raise param_error("weights", func, _describe_accepted(accepted), weights)
    if family == "lite":
        return _lite(resolution)
    return _imagenet(resolution)
