"""captum_effnet: EfficientNet for Captum and scikit-learn, extensible with plugins.

Examples
--------
>>> import captum_effnet as ce
>>> "efficientnet_b0" in ce.list_models()
True
"""

from __future__ import annotations

from ._api import profile
from ._plugins import (
    PluginError,
    PluginInfo,
    PluginWarning,
    get_attribution,
    get_model,
    list_attributions,
    list_models,
    list_plugins,
    register_plugin,
    unregister_plugin,
)
from ._version import __version__
from .hookspecs import hookimpl, hookspec
from .models import efficientnet, get_transforms

__all__ = [
    "PluginError",
    "PluginInfo",
    "PluginWarning",
    "__version__",
    "efficientnet",
    "get_attribution",
    "get_model",
    "get_transforms",
    "hookimpl",
    "hookspec",
    "list_attributions",
    "list_models",
    "list_plugins",
    "profile",
    "register_plugin",
    "unregister_plugin",
]
