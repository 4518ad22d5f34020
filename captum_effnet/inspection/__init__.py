"""scikit-learn's inspection tools on images, with patches as the features.

Examples
--------
>>> import torch
>>> from captum_effnet.inspection import to_patches
>>> to_patches(torch.zeros(2, 3, 8, 8), grid=4).shape
(2, 16)
"""

from __future__ import annotations

from ._estimator import ImageClassifier
from ._patches import from_patches, patch_feature_names, patch_scores, to_patches
from ._plot import importance_map, plot_importances

__all__ = [
    "ImageClassifier",
    "from_patches",
    "importance_map",
    "patch_feature_names",
    "patch_scores",
    "plot_importances",
    "to_patches",
]
