"""Compound scaling as data: the coefficients, the rounding rules and the one table.

EfficientNet (Tan & Le, 2019) scales a baseline network with one compound
coefficient φ::

    depth multiplier       d = α ** φ
    width multiplier       w = β ** φ
    resolution multiplier  r = γ ** φ        subject to  α · β² · γ² ≈ 2

so that the cost (FLOPs ∝ d · w² · r²) grows about 2 ** φ. Turning multipliers
into a network uses three rounding rules, the ones torchvision (and the
official TensorFlow builder) use:

- channels: ``_make_divisible(c * w, 8)`` (nearest multiple of 8, never more
  than 10 % below ``c * w``, at least 8);
- layers per stage: ``ceil(n * d)``;
- resolution: ``base_resolution * r`` rounded to the nearest multiple of
  ``resolution_multiple`` (8 by default), at least one multiple.

The released B1..B7 (and Lite1..Lite4) do *not* follow the formula for one
integer φ (B3 implies φ = 1.91 / 1.85 / 2.09 for depth / width / resolution),
so the named variants come from :data:`VARIANTS`, the published table, and only
:func:`captum_effnet.efficientnet` uses the formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, NamedTuple

from .._validation import check_int, check_real, param_error

__all__ = [
    "B0_STAGES",
    "HEAD_CHANNELS_LITE",
    "STEM_CHANNELS",
    "VARIANTS",
    "CompoundScaling",
    "Multipliers",
    "Stage",
    "StagePlan",
    "Variant",
    "check_phi",
    "round_channels",
    "round_depth",
    "stage_plan",
]


class Stage(NamedTuple):
    """One stage of the B0 baseline (the paper's Table 1)."""

    expand_ratio: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    layers: int


#: The B0 baseline, stage by stage (MBConv1 k3, MBConv6 k3, ... as in Table 1).
B0_STAGES: Final[tuple[Stage, ...]] = (
    Stage(1, 3, 1, 32, 16, 1),
    Stage(6, 3, 2, 16, 24, 2),
    Stage(6, 5, 2, 24, 40, 2),
    Stage(6, 3, 2, 40, 80, 3),
    Stage(6, 5, 1, 80, 112, 3),
    Stage(6, 5, 2, 112, 192, 4),
    Stage(6, 3, 1, 192, 320, 1),
)

#: Stem width of the baseline (scaled with width for B-models, fixed for Lite).
STEM_CHANNELS: Final = 32
#: Head width of the Lite models (not scaled); B-models use ``4 * last stage``.
HEAD_CHANNELS_LITE: Final = 1280


class Variant(NamedTuple):
    """One row of the published table.

    ``bn_eps`` / ``bn_momentum`` are the batch-norm settings torchvision uses
    for that variant (B5..B7 were ported with TensorFlow's), so that
    torchvision checkpoints give torchvision's outputs.
    """

    family: str  # "efficientnet" (B) or "lite"
    width: float
    depth: float
    resolution: int
    dropout: float
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1


_TF_BN: Final = {"bn_eps": 1e-3, "bn_momentum": 0.01}

#: The published variants: (width, depth, resolution, dropout) per name.
#: Sources: the official TF builders (``efficientnet_builder.py``,
#: ``lite/efficientnet_lite_builder.py``), mirrored by torchvision.
VARIANTS: Final[dict[str, Variant]] = {
    "efficientnet_b0": Variant("efficientnet", 1.0, 1.0, 224, 0.2),
    "efficientnet_b1": Variant("efficientnet", 1.0, 1.1, 240, 0.2),
    "efficientnet_b2": Variant("efficientnet", 1.1, 1.2, 260, 0.3),
    "efficientnet_b3": Variant("efficientnet", 1.2, 1.4, 300, 0.3),
    "efficientnet_b4": Variant("efficientnet", 1.4, 1.8, 380, 0.4),
    "efficientnet_b5": Variant("efficientnet", 1.6, 2.2, 456, 0.4, **_TF_BN),
    "efficientnet_b6": Variant("efficientnet", 1.8, 2.6, 528, 0.5, **_TF_BN),
    "efficientnet_b7": Variant("efficientnet", 2.0, 3.1, 600, 0.5, **_TF_BN),
    "efficientnet_lite0": Variant("lite", 1.0, 1.0, 224, 0.2, **_TF_BN),
    "efficientnet_lite1": Variant("lite", 1.0, 1.1, 240, 0.2, **_TF_BN),
    "efficientnet_lite2": Variant("lite", 1.1, 1.2, 260, 0.3, **_TF_BN),
    "efficientnet_lite3": Variant("lite", 1.2, 1.4, 280, 0.3, **_TF_BN),
    "efficientnet_lite4": Variant("lite", 1.4, 1.8, 300, 0.3, **_TF_BN),
}


def round_channels(channels: float, width: float) -> int:
    """Channels after width scaling: ``_make_divisible(channels * width, 8)``.

    Examples
    --------
    >>> round_channels(32, 1.0), round_channels(32, 1.1), round_channels(320, 2.0)
    (32, 32, 640)
    """
    from torchvision.models.efficientnet import MBConvConfig

    return int(MBConvConfig.adjust_channels(channels, width))


def round_depth(layers: int, depth: float) -> int:
    """Layers after depth scaling: ``ceil(layers * depth)`` (at least 1).

    Examples
    --------
    >>> round_depth(3, 1.4), round_depth(1, 0.5)
    (5, 1)
    """
    return max(1, math.ceil(layers * depth))


class Multipliers(NamedTuple):
    """Depth and width multipliers and the rounded input resolution in pixels."""

    depth: float
    width: float
    resolution: int


def check_phi(phi: object, func: str) -> float:
    """Check φ is a finite real number; return it as ``float``."""
    return check_real(phi, name="phi", func=func)


@dataclass(frozen=True)
class CompoundScaling:
    """The compound-scaling rule ``depth = α**φ, width = β**φ, resolution = γ**φ``.

    Parameters
    ----------
    alpha, beta, gamma : float, default 1.2, 1.1, 1.15
        Depth, width and resolution bases (the paper's grid-search result).
        Any positive values are accepted; the paper constrains
        ``alpha * beta**2 * gamma**2 ≈ 2`` so that cost doubles per unit φ
        (see :attr:`cost_base`).
    base_resolution : int, default 224
        Resolution at φ = 0.
    resolution_multiple : int, default 8
        The resolution is rounded to the nearest multiple of this.

    Examples
    --------
    >>> s = CompoundScaling()
    >>> s.multipliers(0)
    Multipliers(depth=1.0, width=1.0, resolution=224)
    >>> d, w, r = s.multipliers(-2)
    >>> round(d, 4), round(w, 4), r
    (0.6944, 0.8264, 168)
    >>> round(s.cost_base, 3)
    1.92
    """

    alpha: float = 1.2
    beta: float = 1.1
    gamma: float = 1.15
    base_resolution: int = 224
    resolution_multiple: int = 8

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "gamma"):
            value = check_real(getattr(self, name), name=name, func="CompoundScaling",
                               low=0.0, closed="neither")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "base_resolution", check_int(
            self.base_resolution, name="base_resolution", func="CompoundScaling", low=1))
        object.__setattr__(self, "resolution_multiple", check_int(
            self.resolution_multiple, name="resolution_multiple", func="CompoundScaling",
            low=1))

    @property
    def cost_base(self) -> float:
        """``alpha * beta**2 * gamma**2``: the FLOPs factor per unit of φ."""
        return self.alpha * self.beta**2 * self.gamma**2

    def multipliers(self, phi: float) -> Multipliers:
        """Depth and width multipliers and rounded resolution for ``phi``.

        Parameters
        ----------
        phi : float
            Any finite real number; negative and fractional values shrink or
            interpolate.

        Returns
        -------
        Multipliers
            ``(depth, width, resolution)``; ``resolution`` is in pixels.

        Raises
        ------
        ValueError
            If φ is not finite or so large that the multipliers overflow.
        """
        phi = check_phi(phi, "CompoundScaling.multipliers")
        try:
            depth = self.alpha**phi
            width = self.beta**phi
            res = self.base_resolution * self.gamma**phi
        except OverflowError:
            depth = width = res = math.inf
        if not all(math.isfinite(v) for v in (depth, width, res)):
            raise param_error("phi", "CompoundScaling.multipliers",
                              "a value for which alpha**phi, beta**phi and gamma**phi are "
                              "finite", phi)
        m = self.resolution_multiple
        resolution = max(m, math.floor(res / m + 0.5) * m)
        return Multipliers(depth, width, resolution)

    def cost_ratio(self, phi: float) -> float:
        """The paper's predicted cost ratio to φ = 0, ``cost_base ** phi``."""
        return float(self.cost_base ** check_phi(phi, "CompoundScaling.cost_ratio"))



class StagePlan(NamedTuple):
    """The concrete widths and depths of one network, after rounding.

    ``stages`` holds one :class:`Stage` per stage with rounded channels and
    layer counts; ``stem`` and ``head`` are the stem and head widths.
    """

    family: str
    stem: int
    stages: tuple[Stage, ...]
    head: int


def stage_plan(family: str, width: float, depth: float) -> StagePlan:
    """Apply the rounding rules to the B0 baseline.

    B-models scale every stage's channels (``round_channels``) and layers
    (``round_depth``), the stem, and a head of ``4 * last stage`` channels,
    as torchvision does. Lite models keep the stem at 32 and the head at 1280
    channels and do not scale the layer count of the first and last stages
    (the official Lite builder's ``fix_head_stem``).

    Examples
    --------
    >>> plan = stage_plan("efficientnet", 1.0, 1.0)
    >>> plan.stem, [s.layers for s in plan.stages], plan.head
    (32, [1, 2, 2, 3, 3, 4, 1], 1280)
    >>> plan = stage_plan("lite", 1.4, 1.8)
    >>> plan.stem, [s.layers for s in plan.stages], plan.head
    (32, [1, 4, 4, 6, 6, 8, 1], 1280)
    """
    if family not in ("efficientnet", "lite"):
        raise ValueError(f"The 'family' must be 'efficientnet' or 'lite'. Got {family!r} instead.")
    lite = family == "lite"
    last = len(B0_STAGES) - 1
    stages = []
    for i, st in enumerate(B0_STAGES):
        fixed = lite and i in (0, last)
        c_in = STEM_CHANNELS if (lite and i == 0) else round_channels(st.in_channels, width)
        stages.append(st._replace(
            in_channels=c_in,
            out_channels=round_channels(st.out_channels, width),
            layers=st.layers if fixed else round_depth(st.layers, depth),
        ))
    stem = STEM_CHANNELS if lite else round_channels(STEM_CHANNELS, width)
    head = HEAD_CHANNELS_LITE if lite else 4 * stages[-1].out_channels
    return StagePlan(family, stem, tuple(stages), head)
