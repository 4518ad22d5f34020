"""The package's own plugin, registered through its ``builtin`` entry point.

It registers the built-in EfficientNet models and attribution methods and
answers the target-layer hook for EfficientNets, exactly as a third-party
plugin would (see ``docs/plugins.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .hookspecs import hookimpl

if TYPE_CHECKING:
    from torch import nn

    from ._plugins import RegistryView


@hookimpl
def captum_effnet_register_models(registry: RegistryView) -> None:
    """Register ``efficientnet_b0``..``b7``, ``lite0``..``lite4`` and ``v2_s/m/l``."""
    from .models import BUILTIN_MODELS

    for name, (builder, info) in BUILTIN_MODELS.items():
        registry.register(name, builder, **info)


@hookimpl
def captum_effnet_register_attributions(registry: RegistryView) -> None:
    """Register the CAM family and the patch permutation method."""
    from .attr._grad_cam import BUILTIN_ATTRIBUTIONS as cams
    from .attr._permutation import BUILTIN_ATTRIBUTIONS as perms

    for name, cls in {**cams, **perms}.items():
        registry.register(name, cls)


@hookimpl
def captum_effnet_target_layer(model: nn.Module) -> nn.Module | None:
    """The last feature block of any torchvision ``EfficientNet`` (V1, V2, lite)."""
    from torchvision.models import EfficientNet

    if isinstance(model, EfficientNet):
        return model.features[-1]
    return None
