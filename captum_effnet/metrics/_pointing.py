"""The pointing game (Zhang et al., "Top-down Neural Attention by Excitation
Backprop", ECCV 2016): does the maximum of the map fall on the object?"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._validation import check_real, param_error

__all__ = ["PointingResult", "pointing_game"]

_FUNC = "pointing_game"


@dataclass(frozen=True)
class PointingResult:
    """Result of :func:`pointing_game`.

    Attributes
    ----------
    hits : Tensor of shape (N,), bool
        Whether each sample's map points at its object.
    accuracy : float
        ``hits.float().mean()``.
    constant : Tensor of shape (N,), bool
        Maps that are constant (every pixel is a maximum); they count as a hit
        only when the (dilated) mask covers the whole image.
    """

    hits: Tensor
    accuracy: float
    constant: Tensor


def _maps(attributions: Any) -> Tensor:
    if not isinstance(attributions, Tensor):
        raise param_error("attributions", _FUNC, "a Tensor of shape (N, H, W) or (N, C, H, W)",
                          attributions, exc=TypeError)
    if attributions.dim() not in (3, 4) or attributions.numel() == 0:
        raise param_error("attributions", _FUNC,
                          "a non-empty Tensor of shape (N, H, W) or (N, C, H, W)",
                          f"a tensor of shape {tuple(attributions.shape)}")
    a = attributions.detach()
    if a.is_complex() or a.dtype == torch.bool:
        raise param_error("attributions", _FUNC, "a real (floating or integer) Tensor",
                          f"a tensor of dtype {a.dtype}", exc=TypeError)
    a = a.float()
    if a.dim() == 4:
        a = a.sum(1)
    if not torch.isfinite(a).all():
        raise param_error("attributions", _FUNC, "finite (no NaN or inf)",
                          "a tensor with non-finite values")
    return a


def _target_masks(masks_or_boxes: Any, n: int, h: int, w: int) -> Tensor:
    expected = ("a bool Tensor of masks (N, H, W) or (N, 1, H, W), or an (N, 4) Tensor "
                "of boxes (x_min, y_min, x_max, y_max), max exclusive")
    if not isinstance(masks_or_boxes, Tensor):
        raise param_error("masks_or_boxes", _FUNC, expected, masks_or_boxes, exc=TypeError)
    t = masks_or_boxes.detach().cpu()
    if t.dim() == 2 and t.shape == (n, 4):
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise param_error("masks_or_boxes", _FUNC, "finite boxes", "non-finite boxes")
        b = t.round().long()
        x0, y0 = b[:, 0].clamp(0, w), b[:, 1].clamp(0, h)
        x1, y1 = b[:, 2].clamp(0, w), b[:, 3].clamp(0, h)
        if bool(((x1 <= x0) | (y1 <= y0)).any()):
            raise param_error("masks_or_boxes", _FUNC,
                              "boxes with x_min < x_max and y_min < y_max that overlap the "
                              f"{h} x {w} image", t.tolist())
        xs = torch.arange(w)
        ys = torch.arange(h)
        in_x = (xs[None] >= x0[:, None]) & (xs[None] < x1[:, None])
        in_y = (ys[None] >= y0[:, None]) & (ys[None] < y1[:, None])
        return in_y[:, :, None] & in_x[:, None, :]
    if t.dim() == 4 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() != 3 or tuple(t.shape) != (n, h, w):
        raise param_error("masks_or_boxes", _FUNC,
                          f"{expected}, matching the attributions (N={n}, H={h}, W={w})",
                          f"a tensor of shape {tuple(masks_or_boxes.shape)}")
    if t.dtype != torch.bool:
        raise param_error("masks_or_boxes", _FUNC, f"{expected} (masks must be bool)",
                          f"a tensor of dtype {t.dtype}", exc=TypeError)
    if not bool(t.flatten(1).any(1).all()):
        empty = torch.nonzero(~t.flatten(1).any(1))[:, 0].tolist()
        raise param_error("masks_or_boxes", _FUNC, "masks with at least one True pixel each",
                          f"empty masks for samples {empty}")
    return t


def _dilate(mask: Tensor, radius: float) -> Tensor:
    """Pixels within Euclidean distance ``radius`` of the mask."""
    r = math.floor(radius)
    if r < 1:
        return mask
    yy, xx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
    disc = ((yy**2 + xx**2) <= radius**2).float()[None, None]
    out = F.conv2d(mask[:, None].float(), disc, padding=r)
    return out[:, 0] > 0.5


def pointing_game(attributions: Tensor, masks_or_boxes: Tensor, *,
                  tolerance: float = 0.0) -> PointingResult:
    """Does each map's maximum lie on the object?

    A sample is a *hit* when **every** pixel where its map reaches its maximum
    lies within ``tolerance`` pixels (Euclidean distance) of the object. Taking
    every maximum, not the first one found, keeps ties honest: a constant map
    (all pixels are maxima, e.g. an all-zero Grad-CAM) is a miss unless the
    object (dilated) covers the whole image.

    Parameters
    ----------
    attributions : Tensor of shape (N, H, W) or (N, C, H, W)
        The maps; channels are summed. Must be finite.
    masks_or_boxes : Tensor
        Where the objects are: bool masks ``(N, H, W)`` or ``(N, 1, H, W)``
        (several objects per image: one mask holding all), or boxes ``(N, 4)``
        as ``(x_min, y_min, x_max, y_max)`` in pixels with the max exclusive
        (clipped to the image).
    tolerance : float, default 0.0
        Radius in pixels by which the object is grown (the original uses 15 px
        at 224 px). Must be >= 0.

    Returns
    -------
    PointingResult
        ``hits`` (N,), ``accuracy`` and the ``constant`` flags.

    Examples
    --------
    >>> import torch
    >>> maps = torch.zeros(2, 4, 4)
    >>> maps[0, 1, 1] = 1.0          # points at (row 1, col 1)
    >>> maps[1, 3, 3] = 1.0          # points at (row 3, col 3)
    >>> boxes = torch.tensor([[0, 0, 2, 2], [0, 0, 2, 2]])
    >>> res = pointing_game(maps, boxes)
    >>> res.hits.tolist(), res.accuracy
    ([True, False], 0.5)
    >>> pointing_game(maps, boxes, tolerance=3.0).hits.tolist()  # (3, 3) is 2.83 px from (1, 1)
    [True, True]
    """
    a = _maps(attributions)
    tolerance = check_real(tolerance, name="tolerance", func=_FUNC, low=0.0)
    n, h, w = a.shape
    target = _target_masks(masks_or_boxes, n, h, w).to(a.device)
    target = _dilate(target, tolerance)
    flat = a.flatten(1)
    peak = flat == flat.max(1, keepdim=True).values
    constant = peak.all(1)
    hits = (~peak | target.flatten(1)).all(1)
    return PointingResult(hits=hits.cpu(), accuracy=float(hits.float().mean()),
                          constant=constant.cpu())
