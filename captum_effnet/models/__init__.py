"""The EfficientNet compound-scaling model factory.

Build any member of the family from the compound coefficient φ
(:func:`efficientnet`), or a published variant by name through
:data:`BUILTIN_MODELS` / :func:`captum_effnet.get_model`; measure cost
(:func:`profile`, :func:`scale_table`); get matching preprocessing
(:func:`get_transforms`); and search coefficients or φ under a budget
(:func:`search_coefficients`, :func:`phi_for_budget`). See ``docs/models.md``.

Examples
--------
>>> from captum_effnet.models import BUILTIN_MODELS, CompoundScaling
>>> CompoundScaling().multipliers(1)
Multipliers(depth=1.2, width=1.1, resolution=256)
>>> BUILTIN_MODELS["efficientnet_lite0"][1]["weights"]
('imagenet',)
"""

from __future__ import annotations

from ._efficientnet import BUILTIN_MODELS, efficientnet
from ._profile import ModelProfile, profile, scale_table
from ._scaling import CompoundScaling
from ._search import phi_for_budget, search_coefficients
from ._transforms import get_transforms

__all__ = [
    "BUILTIN_MODELS",
    "CompoundScaling",
    "ModelProfile",
    "efficientnet",
    "get_transforms",
    "phi_for_budget",
    "profile",
    "scale_table",
    "search_coefficients",
]
