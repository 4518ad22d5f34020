"""Top-level functions that see every registered model, plugins' included."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import _plugins
from .models import BUILTIN_MODELS
from .models import profile as _profile_model
from .models._profile import ModelProfile

__all__ = ["profile"]


def profile(model_or_name: nn.Module | str, resolution: int | None = None) -> ModelProfile:
    """Parameters, MACs, resolution and activation memory of a model.

    Like :func:`captum_effnet.models.profile`, and a name may be any model in
    :func:`captum_effnet.list_models`, plugins' included (built on the meta
    device when the builder allows it, so nothing is allocated; the
    resolution defaults to the one the plugin registered).

    Examples
    --------
    >>> import captum_effnet as ce
    >>> ce.profile("efficientnet_b0").params
    5288548
    """
    if isinstance(model_or_name, str) and model_or_name not in BUILTIN_MODELS:
        entry = _plugins._lookup("model", model_or_name, "profile", "model_or_name")
        model: Any
        try:
            with torch.device("meta"):
                model = _plugins.get_model(model_or_name)
        except Exception:  # a builder that cannot run on the meta device
            model = _plugins.get_model(model_or_name)
        if resolution is None:
            resolution = entry.info.get("resolution")
        return _profile_model(model, resolution)
    return _profile_model(model_or_name, resolution)
