"""Feature masks for grouped perturbation attributions on images.

A *feature mask* is Captum's way of grouping input elements: an integer tensor
broadcastable to the input, equal values forming one feature. Two kinds are
built here:

* :func:`patch_mask` — a regular grid of ``rows x cols`` rectangular patches,
  numbered row-major (patch ``r * cols + c`` is row ``r``, column ``c``), the
  same order as the columns of :func:`captum_effnet.inspection.to_patches`;
* :func:`superpixel_mask` — SLIC superpixels of one image (needs scikit-image).

:func:`mask_values` turns a per-element attribution back into one value per
feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validation import param_error

__all__ = ["check_divides", "check_grid", "mask_values", "patch_mask", "superpixel_mask"]


def check_grid(grid: Any, *, func: str, name: str = "grid") -> tuple[int, int]:
    """Validate a grid given as ``int`` or ``(rows, cols)``; return ``(rows, cols)``.

    Examples
    --------
    >>> check_grid(4, func="f")
    (4, 4)
    >>> check_grid((2, 3), func="f")
    (2, 3)
    >>> check_grid((0, 3), func="f")
    Traceback (most recent call last):
    ...
    ValueError: The 'grid' parameter of f must be a positive int or a pair ... Got (0, 3) instead.
    """
    expected = "a positive int or a pair (rows, cols) of positive ints"

    def _is_int(v: Any) -> bool:
        return isinstance(v, Integral | np.integer) and not isinstance(v, bool)

    if _is_int(grid):
        pair: tuple[Any, ...] = (grid, grid)
    elif isinstance(grid, Sequence) and not isinstance(grid, str) and len(grid) == 2:
        pair = tuple(grid)
    else:
        raise param_error(name, func, expected, grid, exc=TypeError)
    if not all(_is_int(v) for v in pair):
        raise param_error(name, func, expected, grid, exc=TypeError)
    rows, cols = int(pair[0]), int(pair[1])
    if rows < 1 or cols < 1:
        raise param_error(name, func, expected, grid)
    return rows, cols


def check_divides(height: int, width: int, grid: tuple[int, int], *, func: str,
                  name: str = "grid") -> tuple[int, int]:
    """Refuse a grid that does not divide the image; return the patch size ``(ph, pw)``.

    Examples
    --------
    >>> check_divides(224, 224, (4, 4), func="f")
    (56, 56)
    >>> check_divides(224, 224, (3, 4), func="f")
    Traceback (most recent call last):
    ...
    ValueError: The 'grid' parameter of f must be a (rows, cols) pair dividing the image
    size (height, width) = (224, 224) exactly (no padding is done; resize or crop first,
    e.g. to (225, 224)). Got (3, 4) instead.
    """
    rows, cols = grid
    if height % rows or width % cols or rows > height or cols > width:
        hint_h = max(rows, round(height / rows) * rows)
        hint_w = max(cols, round(width / cols) * cols)
        raise param_error(
            name, func,
            f"a (rows, cols) pair dividing the image size (height, width) = "
            f"({height}, {width}) exactly (no padding is done; resize or crop first, "
            f"e.g. to ({hint_h}, {hint_w}))",
            grid,
        )
    return height // rows, width // cols


def _size_pair(size: Any, *, func: str, name: str = "size") -> tuple[int, int]:
    try:
        return check_grid(size, func=func, name=name)
    except (TypeError, ValueError):
        raise param_error(name, func, "a positive int or a pair (height, width) of "
                          "positive ints", size,
                          exc=ValueError if isinstance(size, Sequence | Integral)
                          else TypeError) from None


def patch_mask(size: int | Sequence[int], grid: int | Sequence[int], *,
               device: torch.device | str | None = None) -> Tensor:
    """A Captum feature mask of ``rows x cols`` equal patches, shape ``(1, 1, H, W)``.

    Parameters
    ----------
    size : int or (int, int)
        Image size ``(height, width)``; an int means a square image.
    grid : int or (int, int)
        Patches per column and per row, ``(rows, cols)``. It must divide the
        image size exactly (no padding is done).
    device : torch.device or str, optional
        Where the mask lives (the inputs' device).

    Returns
    -------
    Tensor
        ``int64`` tensor of shape ``(1, 1, H, W)`` holding ``r * cols + c`` in
        patch ``(r, c)``; it broadcasts over the batch and channel dimensions,
        so all channels of a patch move together.

    Examples
    --------
    >>> patch_mask((4, 6), (2, 3))[0, 0]
    tensor([[0, 0, 1, 1, 2, 2],
            [0, 0, 1, 1, 2, 2],
            [3, 3, 4, 4, 5, 5],
            [3, 3, 4, 4, 5, 5]])
    """
    height, width = _size_pair(size, func="patch_mask")
    rows, cols = check_grid(grid, func="patch_mask")
    ph, pw = check_divides(height, width, (rows, cols), func="patch_mask")
    r = torch.arange(height, device=device) // ph
    c = torch.arange(width, device=device) // pw
    return (r[:, None] * cols + c[None, :]).reshape(1, 1, height, width)


def superpixel_mask(image: Tensor | np.ndarray, n_segments: int = 16, *,
                    compactness: float = 10.0, sigma: float = 1.0,
                    device: torch.device | str | None = None) -> Tensor:
    """A Captum feature mask of SLIC superpixels of one image, shape ``(1, 1, H, W)``.

    Uses :func:`skimage.segmentation.slic`. The image is min-max scaled to
    ``[0, 1]`` first (so normalised model inputs work), and the labels are
    renumbered ``0..K-1``; ``K`` is close to, not always equal to, ``n_segments``.

    Parameters
    ----------
    image : Tensor or ndarray of shape (C, H, W) or (1, C, H, W)
        The image to segment (channels first, like the model input).
    n_segments : int, default=16
        Approximate number of superpixels.
    compactness : float, default=10.0
        SLIC's balance of colour and space proximity (higher = squarer).
    sigma : float, default=1.0
        Gaussian smoothing before segmenting.
    device : torch.device or str, optional
        Where the mask lives.

    Returns
    -------
    Tensor
        ``int64`` tensor of shape ``(1, 1, H, W)``.

    Raises
    ------
    ImportError
        If scikit-image is not installed.

    Examples
    --------
    >>> img = torch.zeros(3, 16, 16)  # four quadrants of different colours
    >>> img[0, :8, 8:] = img[1, 8:, :8] = img[2, 8:, 8:] = 1.0
    >>> m = superpixel_mask(img, n_segments=4)
    >>> m.shape, int(m.max()) + 1
    (torch.Size([1, 1, 16, 16]), 4)
    """
    try:
        from skimage.segmentation import slic
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "superpixel masks need scikit-image, which is not installed. Install it "
            "with `pip install scikit-image`, or use a patch grid instead."
        ) from exc
    arr = image.detach().cpu().numpy() if isinstance(image, Tensor) else np.asarray(image)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3 or arr.shape[0] < 1:
        raise param_error("image", "superpixel_mask",
                          "one channels-first image of shape (C, H, W) or (1, C, H, W)",
                          f"an array of shape {tuple(arr.shape)}")
    if isinstance(n_segments, bool) or not isinstance(n_segments, Integral) or n_segments < 1:
        raise param_error("n_segments", "superpixel_mask", "a positive int", n_segments,
                          exc=ValueError if isinstance(n_segments, Integral) else TypeError)
    hwc = np.moveaxis(arr.astype(np.float64), 0, -1)
    lo, hi = float(hwc.min()), float(hwc.max())
    hwc = (hwc - lo) / (hi - lo) if hi > lo else np.zeros_like(hwc)
    labels = slic(hwc, n_segments=int(n_segments), compactness=float(compactness),
                  sigma=float(sigma), channel_axis=-1,
                  convert2lab=hwc.shape[-1] == 3, start_label=0)
    _, inverse = np.unique(labels, return_inverse=True)
    mask = torch.as_tensor(inverse.reshape(labels.shape), dtype=torch.int64, device=device)
    return mask.reshape(1, 1, *labels.shape)


def mask_values(attributions: Tensor, feature_mask: Tensor) -> Tensor:
    """One value per feature: the mean attribution over each feature's elements.

    Parameters
    ----------
    attributions : Tensor of shape (N, ...)
        A Captum attribution, e.g. from :class:`~captum_effnet.attr.PatchPermutation`.
    feature_mask : Tensor
        The mask used, broadcastable to ``attributions`` (first dimension 1 or N),
        features numbered ``0..K-1``.

    Returns
    -------
    Tensor of shape (N, K)
        Column ``k`` is feature ``k``'s attribution per sample (for a grouped
        perturbation method every element of a feature holds the same value,
        so the mean is that value).

    Examples
    --------
    >>> attr = torch.tensor([[[[1., 1., 2., 2.]]]])
    >>> mask_values(attr, torch.tensor([[[[0, 0, 1, 1]]]]))
    tensor([[1., 2.]])
    """
    if not isinstance(attributions, Tensor):
        raise param_error("attributions", "mask_values", "a torch.Tensor", attributions,
                          exc=TypeError)
    if not isinstance(feature_mask, Tensor) or feature_mask.is_floating_point():
        raise param_error("feature_mask", "mask_values", "an integer torch.Tensor",
                          feature_mask, exc=TypeError)
    n = attributions.shape[0]
    mask = torch.broadcast_to(feature_mask.to(attributions.device), attributions.shape)
    mask = mask.reshape(n, -1).long()
    k = int(mask.max()) + 1
    flat = attributions.reshape(n, -1).to(torch.float64)
    sums = torch.zeros(n, k, dtype=torch.float64, device=flat.device).scatter_add_(1, mask, flat)
    counts = torch.zeros(n, k, dtype=torch.float64, device=flat.device).scatter_add_(
        1, mask, torch.ones_like(flat))
    return (sums / counts.clamp_min(1)).to(attributions.dtype)
