"""Hook specifications of the ``captum_effnet`` plugin system.

A plugin is any module or object with functions marked ``@hookimpl`` whose
names are the hooks below. Plugins are found through the entry-point group
``captum_effnet`` (see ``docs/plugins.md``); the package's own models and
methods are registered by its built-in plugin through the same entry point.

Examples
--------
>>> from captum_effnet import hookimpl
>>> class MyPlugin:
...     @hookimpl
...     def captum_effnet_register_models(self, registry):
...         registry.register("tiny_net", lambda **kw: None)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from torch import nn

    from ._plugins import RegistryView

__all__ = [
    "PROJECT_NAME",
    "captum_effnet_register_attributions",
    "captum_effnet_register_models",
    "captum_effnet_target_layer",
    "hookimpl",
    "hookspec",
]

#: The pluggy project name and the entry-point group.
PROJECT_NAME = "captum_effnet"

#: Marker for hook specifications (used in this module only).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

#: Marker for hook implementations; plugins decorate their functions with it.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def captum_effnet_register_models(registry: RegistryView) -> None:
    """Add model builders to the model registry.

    Parameters
    ----------
    registry : RegistryView
        Call ``registry.register(name, builder, **info)`` once per model.
        ``builder(**kwargs)`` must return a :class:`torch.nn.Module`;
        :func:`captum_effnet.get_model` passes it ``weights=`` and
        ``num_classes=`` only when the user gives them, plus any other keyword
        arguments. ``info`` is free-form metadata shown by
        ``captum-effnet models`` (for example ``resolution=224``,
        ``weights=("imagenet",)``, ``description="..."``).

    Returns
    -------
    None
        Anything else is reported as a failure of the plugin (and nothing it
        registered is kept). A name that another plugin registered already is
        an error naming both plugins.
    """


@hookspec
def captum_effnet_register_attributions(registry: RegistryView) -> None:
    """Add attribution methods to the attribution registry.

    Parameters
    ----------
    registry : RegistryView
        Call ``registry.register(name, cls, **info)`` once per method, where
        ``cls`` is a subclass of :class:`captum.attr.Attribution` whose
        constructor takes the model (``forward_func``) first, as Captum's do.

    Returns
    -------
    None
        Anything else is reported as a failure of the plugin (and nothing it
        registered is kept). A name that another plugin registered already is
        an error naming both plugins.
    """


@hookspec(firstresult=True)
def captum_effnet_target_layer(model: nn.Module) -> nn.Module | None:
    """Choose the layer Grad-CAM should use for ``model``.

    Called with the user's model when a CAM method is created with
    ``layer=None``. Plugins are asked in turn (most recently registered
    first); the first answer that is not ``None`` wins.

    Parameters
    ----------
    model : torch.nn.Module
        The model being explained. Do not modify it.

    Returns
    -------
    torch.nn.Module or None
        A submodule of ``model`` whose output is a 4-D feature map
        ``(N, C, H, W)``, or ``None`` to let other plugins (and finally the
        generic rule: the last module with a 4-D output of spatial size > 1)
        decide.
    """
