"""Captum attributions for EfficientNets and other CNNs.

Examples
--------
>>> from captum_effnet.attr import GradCam, find_target_layer
>>> GradCam.get_name()
'Grad-CAM'
"""

from __future__ import annotations

from ._grad_cam import GradCam, GradCamPlusPlus, HiResCam, LayerCam, XGradCam
from ._guided import GuidedBackprop, GuidedGradCam
from ._layers import find_target_layer
from ._permutation import PatchPermutation

__all__ = [
    "GradCam",
    "GradCamPlusPlus",
    "GuidedBackprop",
    "GuidedGradCam",
    "HiResCam",
    "LayerCam",
    "PatchPermutation",
    "XGradCam",
    "find_target_layer",
]
