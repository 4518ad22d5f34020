"""Patch importances as an image-sized heatmap and as a per-patch plot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._validation import check_choice, param_error
from ..attr._masks import check_grid
from ._patches import patch_feature_names

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["importance_map", "plot_importances"]


def _as_numpy(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def _mean_importances(importances: Any, n_features: int, func: str) -> np.ndarray:
    if isinstance(importances, Mapping) or hasattr(importances, "importances_mean"):
        try:
            importances = importances["importances_mean"]
        except (KeyError, TypeError):
            importances = importances.importances_mean
    try:
        arr = _as_numpy(importances)
    except (TypeError, ValueError) as exc:
        raise param_error("importances", func, "an array-like of numbers or a "
                          "permutation_importance result", importances, exc=TypeError) from exc
    if arr.ndim == 2 and arr.shape[0] == n_features:
        arr = arr.mean(axis=1)  # scikit-learn's (n_features, n_repeats) layout
    if arr.ndim != 1 or arr.shape[0] != n_features:
        raise ValueError(
            f"The 'importances' parameter of {func} must have one value per patch: shape "
            f"({n_features},) or ({n_features}, n_repeats) for this grid. Got shape "
            f"{arr.shape} instead (for a Captum (N, {n_features}) table from patch_scores, "
            f"pass its mean over samples, scores.mean(0))."
        )
    if not np.isfinite(arr).all():
        raise param_error("importances", func, "finite numbers (no NaN or inf)",
                          f"{int((~np.isfinite(arr)).sum())} non-finite value(s)")
    return arr


def importance_map(importances: Any, grid: int | Sequence[int],
                   size: int | Sequence[int], *, mode: str = "nearest") -> np.ndarray:
    """Spread per-patch importances over the image: an ``(H, W)`` heatmap.

    Parameters
    ----------
    importances : array-like or Bunch
        One value per patch in :func:`~captum_effnet.inspection.to_patches` order:
        shape ``(rows * cols,)``, or ``(rows * cols, n_repeats)`` (averaged), or
        the result of :func:`sklearn.inspection.permutation_importance` (its
        ``importances_mean`` is used). Tensors are accepted.
    grid : int or (int, int)
        ``(rows, cols)``.
    size : int or (int, int)
        Image size ``(H, W)`` of the map. It need not be a multiple of the grid.
    mode : {"nearest", "bilinear"}, default="nearest"
        ``"nearest"``: each pixel takes its patch's value (blocks; patch ``(r, c)``
        covers rows ``floor(r * H / rows)`` to ``floor((r + 1) * H / rows)``).
        ``"bilinear"``: a smooth map through the patch centres, for overlays.

    Returns
    -------
    ndarray of float64, shape (H, W)

    Examples
    --------
    >>> importance_map([1.0, 2.0, 3.0, 4.0], grid=(2, 2), size=4)
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.],
           [3., 3., 4., 4.],
           [3., 3., 4., 4.]])
    """
    func = "importance_map"
    rows, cols = check_grid(grid, func=func)
    try:
        height, width = check_grid(size, func=func, name="size")
    except (TypeError, ValueError):
        raise param_error("size", func, "a positive int or a pair (height, width) of "
                          "positive ints", size) from None
    check_choice(mode, ["nearest", "bilinear"], name="mode", func=func)
    values = _mean_importances(importances, rows * cols, func).reshape(rows, cols)
    if mode == "nearest":
        r = (np.arange(height) * rows) // height
        c = (np.arange(width) * cols) // width
        return values[r[:, None], c[None, :]]
    t = torch.from_numpy(values)[None, None]
    out = torch.nn.functional.interpolate(t, size=(height, width), mode="bilinear",
                                          align_corners=False)
    return out[0, 0].numpy()


def plot_importances(result: Any, grid: int | Sequence[int] | None = None, *,
                     ax: Axes | None = None, top_k: int | None = None,
                     feature_names: Sequence[str] | None = None) -> Axes:
    """Box plot of each patch's importance over the permutation repeats.

    Patches are sorted by mean importance, the most important on top; the
    boxes show the spread over repeats, a dashed line marks zero.

    Parameters
    ----------
    result : Bunch or array-like
        The result of :func:`sklearn.inspection.permutation_importance` (its
        ``importances``, shape ``(n_patches, n_repeats)``, are plotted), or such
        an array, or a 1-D array of means (no spread shown then).
    grid : int or (int, int), optional
        Used to label patches ``patch_r{row}_c{col}``.
    ax : matplotlib Axes, optional
        Where to draw. Default: a new :class:`matplotlib.figure.Figure` (no
        pyplot, so it works with any backend, e.g. Agg on a server).
    top_k : int, optional
        Show only the ``top_k`` most important patches.
    feature_names : sequence of str, optional
        Labels (overrides ``grid``).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> imp = np.array([[0.1, 0.2, 0.15], [0.0, 0.0, 0.0], [0.5, 0.4, 0.6], [0.0, 0.1, 0.0]])
    >>> ax = plot_importances(imp, grid=(2, 2), top_k=3)
    >>> [t.get_text() for t in ax.get_yticklabels()][::-1]  # top to bottom
    ['patch_r1_c0', 'patch_r0_c0', 'patch_r1_c1']
    """
    func = "plot_importances"
    if isinstance(result, Mapping) or hasattr(result, "importances"):
        try:
            result = result["importances"]
        except (KeyError, TypeError):
            result = result.importances
    arr = _as_numpy(result)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"The 'result' parameter of {func} must be a permutation_importance "
                         f"result or an array of shape (n_patches, n_repeats). Got shape "
                         f"{arr.shape} instead.")
    n = arr.shape[0]
    if feature_names is not None:
        names = [str(v) for v in feature_names]
        if len(names) != n:
            raise ValueError(f"The 'feature_names' parameter of {func} must have {n} names. "
                             f"Got {len(names)} instead.")
    elif grid is not None:
        rows, cols = check_grid(grid, func=func)
        if rows * cols != n:
            raise ValueError(f"The 'grid' parameter of {func} must have rows * cols = {n} "
                             f"(the number of patches in result). Got {grid!r} instead.")
        names = patch_feature_names((rows, cols)).tolist()
    else:
        names = [f"feature {j}" for j in range(n)]
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                              or top_k < 1):
        raise param_error("top_k", func, "a positive int or None", top_k,
                              exc=ValueError if isinstance(top_k, int) else TypeError)
    order = np.argsort(-arr.mean(axis=1), kind="stable")[: top_k or n]
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.0, 0.35 * len(order) + 1.2))
        ax = fig.add_subplot()
    shown = order[::-1]  # matplotlib draws bottom-up; most important on top
    ax.boxplot([arr[j] for j in shown], orientation="horizontal",
               tick_labels=[names[j] for j in shown], widths=0.6)
    ax.axvline(0.0, color="0.5", linestyle="--", linewidth=1)
    ax.set_xlabel("importance (drop in score when the patch is permuted)")
    ax.set_title("Patch permutation importance")
    return ax
