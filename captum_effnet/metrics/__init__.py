"""Checking explanations: faithfulness metrics and data with known ground truth.

- :func:`deletion_insertion`: deletion and insertion AUC (Petsiuk et al. 2018).
- :func:`randomization_test`: model parameter randomisation (Adebayo et al. 2018).
- :func:`pointing_game`: does the map's maximum fall on the object (Zhang et al. 2016).
- :func:`make_synthetic_objects`: images with objects at known positions.

Examples
--------
>>> from captum_effnet.metrics import pointing_game
>>> import torch
>>> pointing_game(torch.eye(3)[None], torch.eye(3, dtype=torch.bool)[None]).accuracy
1.0
"""

from __future__ import annotations

from ._deletion import DeletionInsertion, deletion_insertion
from ._pointing import PointingResult, pointing_game
from ._randomization import RandomizationResult, randomization_test, randomization_units
from ._synthetic import SHAPES, SyntheticObjects, make_synthetic_objects

__all__ = [
    "SHAPES",
    "DeletionInsertion",
    "PointingResult",
    "RandomizationResult",
    "SyntheticObjects",
    "deletion_insertion",
    "make_synthetic_objects",
    "pointing_game",
    "randomization_test",
    "randomization_units",
]
