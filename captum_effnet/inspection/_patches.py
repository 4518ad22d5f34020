"""Images as a 2-D table of patches that scikit-learn can permute.

:func:`to_patches` cuts every image into a ``rows x cols`` grid and returns an
object-dtype array ``X`` of shape ``(n_images, rows * cols)`` whose cell
``X[i, j]`` is patch ``j`` of image ``i``: a read-only ``float32`` array of
shape ``(C, H / rows, W / cols)``. Patches are numbered row-major, patch
``j = r * cols + c`` being grid row ``r``, column ``c`` (feature name
``patch_r{r}_c{c}``), the same numbering as
:func:`captum_effnet.attr._masks.patch_mask`.

Why this encoding: scikit-learn's ``permutation_importance`` copies ``X``
(``X.copy()``) and shuffles one column in place
(``X[:, j] = X[perm, j]``). On an object array that copies and moves
*pointers*, not pixels, so patch ``j`` travels between images at the cost of
a few bytes per image, and the data stays self-contained: ``X`` pickles
(e.g. to ``n_jobs=2`` worker processes) with its pixels, and the estimator
holds no hidden reference to a dataset. The patches are read-only so that
sharing them between copies is safe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validation import param_error
from ..attr._masks import check_divides, check_grid, mask_values, patch_mask

__all__ = ["from_patches", "patch_feature_names", "patch_scores", "to_patches"]


def patch_feature_names(grid: int | Sequence[int]) -> np.ndarray:
    """Feature names of the columns of :func:`to_patches`: ``patch_r{row}_c{col}``.

    Parameters
    ----------
    grid : int or (int, int)
        ``(rows, cols)``; an int means a square grid.

    Returns
    -------
    ndarray of str, shape (rows * cols,)
        Object-dtype array, like scikit-learn's ``feature_names_in_``.

    Examples
    --------
    >>> patch_feature_names((2, 3)).tolist()
    ['patch_r0_c0', 'patch_r0_c1', 'patch_r0_c2', 'patch_r1_c0', 'patch_r1_c1', 'patch_r1_c2']
    """
    rows, cols = check_grid(grid, func="patch_feature_names")
    return np.asarray([f"patch_r{r}_c{c}" for r in range(rows) for c in range(cols)],
                      dtype=object)


def _pil_to_array(img: Any) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    chw = np.ascontiguousarray(np.moveaxis(arr, -1, 0))
    if chw.dtype == np.uint8:
        return chw.astype(np.float32) / np.float32(255.0)
    return chw.astype(np.float32)


def _is_pil(obj: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow ships with torchvision
        return False
    return isinstance(obj, Image.Image)


def _one_image(img: Any, transform: Callable[[Any], Any] | None, index: int) -> np.ndarray:
    if transform is not None:
        img = transform(img)
    if isinstance(img, Tensor):
        arr = img.detach().cpu().numpy()
    elif _is_pil(img):
        arr = _pil_to_array(img)
    elif isinstance(img, np.ndarray):
        arr = img
    else:
        what = f"transform(images[{index}])" if transform is not None else f"images[{index}]"
        raise TypeError(
            f"The 'images' parameter of to_patches must be a tensor or array (N, C, H, W), "
            f"or a sequence of PIL images, tensors or arrays (C, H, W). {what} is a "
            f"{type(img).__name__!s} instead."
        )
    if arr.ndim != 3:
        raise ValueError(
            f"The 'images' parameter of to_patches must hold channels-first images of "
            f"shape (C, H, W). Image {index} has shape {tuple(arr.shape)} instead"
            + (" (pass a transform that returns a (C, H, W) tensor, e.g. "
               "torchvision.transforms.ToTensor())." if transform is None else ".")
        )
    return arr


def _as_batch(images: Any, transform: Callable[[Any], Any] | None) -> np.ndarray:
    """Images as one numeric (N, C, H, W) array."""
    if transform is not None and not callable(transform):
        raise param_error("transform", "to_patches", "a callable or None", transform,
                          exc=TypeError)
    if isinstance(images, Tensor | np.ndarray) and transform is None:
        arr = images.detach().cpu().numpy() if isinstance(images, Tensor) else images
        if arr.dtype == object:
            raise TypeError(
                "The 'images' parameter of to_patches must be a numeric array of images "
                "(N, C, H, W). Got an object-dtype array instead (is it already the "
                "output of to_patches?)."
            )
        if arr.ndim != 4:
            hint = ""
            if arr.ndim == 3:
                hint = (" (one image: add the batch dimension with images[None]; a batch of "
                        "grayscale images: add the channel dimension with images[:, None])")
            raise ValueError(
                f"The 'images' parameter of to_patches must be a batch of channels-first "
                f"images of shape (N, C, H, W){hint}. Got an array of shape "
                f"{tuple(arr.shape)} instead."
            )
    elif isinstance(images, Sequence | Tensor | np.ndarray) and not isinstance(images, str):
        if len(images) == 0:
            raise ValueError("The 'images' parameter of to_patches must hold at least one "
                             "image. Got an empty sequence instead.")
        arrays = [_one_image(img, transform, i) for i, img in enumerate(images)]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ValueError(
                "The 'images' parameter of to_patches must hold images of one shape "
                f"(resize or crop them first). Got shapes {sorted(shapes)} instead."
            )
        arr = np.stack(arrays)
    else:
        raise TypeError(
            "The 'images' parameter of to_patches must be a tensor or array of shape "
            "(N, C, H, W), or a sequence of PIL images (with an optional transform), "
            f"tensors or arrays. Got {type(images).__name__} instead."
        )
    if arr.shape[0] == 0 or 0 in arr.shape[1:]:
        raise ValueError(f"The 'images' parameter of to_patches must hold at least one "
                         f"non-empty image. Got an array of shape {tuple(arr.shape)} instead.")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(
            f"The 'images' parameter of to_patches must hold real numbers (float or int "
            f"pixels). Got dtype {arr.dtype} instead."
        )
    return arr


def to_patches(images: Any, grid: int | Sequence[int], *,
               transform: Callable[[Any], Any] | None = None) -> np.ndarray:
    """Cut images into a grid of patches: a 2-D ``X`` for scikit-learn.

    Parameters
    ----------
    images : Tensor or ndarray of shape (N, C, H, W), or a sequence of images
        A batch of channels-first images, or a sequence of PIL images, tensors
        or arrays ``(C, H, W)`` of one size. Values are kept as they are and
        stored as ``float32``, except PIL images without a ``transform``,
        which become ``[0, 1]`` floats like ``torchvision.transforms.ToTensor``.
        Model normalisation is best left to ``ImageClassifier(transform=...)``
        so that the patches keep pixel values.
    grid : int or (int, int)
        Patches per column and per row, ``(rows, cols)``; an int means a square
        grid. It must divide ``(H, W)`` exactly (no padding is done).
    transform : callable, optional
        Applied to every image first (e.g. a torchvision transform that turns a
        PIL image into a ``(C, H, W)`` tensor).

    Returns
    -------
    X : ndarray of object, shape (N, rows * cols)
        ``X[i, j]`` is patch ``j`` (row-major) of image ``i``: a read-only
        ``float32`` array of shape ``(C, H // rows, W // cols)``. Permuting a
        column moves one patch between images; copying ``X`` copies pointers.
        :func:`patch_feature_names` names the columns.

    Raises
    ------
    ValueError
        Grid not dividing the image size, arrays that are not a batch of
        images, images of different sizes.
    TypeError
        Inputs that are not images or numbers.

    See Also
    --------
    from_patches : the inverse.
    ImageClassifier : the estimator that reads this ``X``.

    Examples
    --------
    >>> import torch
    >>> images = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    >>> X = to_patches(images, grid=(2, 2))
    >>> X.shape, X.dtype, X[0, 1].shape
    ((2, 4), dtype('O'), (1, 2, 2))
    >>> X[0, 1]
    array([[[2., 3.],
            [6., 7.]]], dtype=float32)
    >>> bool(torch.equal(from_patches(X, grid=(2, 2)), images))
    True
    """
    rows, cols = check_grid(grid, func="to_patches")
    arr = _as_batch(images, transform)
    n, c, h, w = arr.shape
    ph, pw = check_divides(h, w, (rows, cols), func="to_patches")
    block = np.ascontiguousarray(
        arr.reshape(n, c, rows, ph, cols, pw).transpose(0, 2, 4, 1, 3, 5), dtype=np.float32
    )
    if block.base is not None or block is arr:  # make sure the user's array is not shared
        block = block.copy()
    block.flags.writeable = False
    X = np.empty(n * rows * cols, dtype=object)
    cells = block.reshape(n * rows * cols, c, ph, pw)
    for k in range(X.shape[0]):
        X[k] = cells[k]
    return X.reshape(n, rows * cols)


def check_patch_table(X: Any, grid: tuple[int, int], *, func: str, name: str = "X"
                      ) -> np.ndarray:
    """Check that ``X`` is a table from :func:`to_patches` for ``grid``; return it.

    Accepts an object ndarray of shape ``(N, rows * cols)`` (or anything with
    ``to_numpy``, such as a pandas DataFrame of such cells). The cells are
    checked when the images are assembled.
    """
    if hasattr(X, "iloc") and hasattr(X, "to_numpy"):
        X = X.to_numpy(dtype=object)
    if not isinstance(X, np.ndarray) or X.dtype != object:
        got = (f"an array of dtype {X.dtype} and shape {X.shape}"
               if isinstance(X, np.ndarray) else type(X).__name__)
        raise TypeError(
            f"The {name!r} parameter of {func} must be an object array of image patches "
            f"made by captum_effnet.inspection.to_patches(images, grid). Got {got} instead."
        )
    rows, cols = grid
    if X.ndim != 2 or X.shape[1] != rows * cols:
        raise ValueError(
            f"The {name!r} parameter of {func} must have rows * cols = {rows * cols} "
            f"columns for grid={grid} (one per patch). Got shape {X.shape} instead; "
            f"was it made with to_patches(images, grid={grid})?"
        )
    if X.shape[0] == 0:
        raise ValueError(f"The {name!r} parameter of {func} must hold at least one image. "
                         f"Got shape {X.shape} instead.")
    return X


def assemble(X: np.ndarray, grid: tuple[int, int], *, func: str, name: str = "X") -> Tensor:
    """Reassemble the rows of a patch table into a ``(N, C, H, W)`` float tensor."""
    rows, cols = grid
    n = X.shape[0]
    try:
        stacked = np.stack(X.reshape(-1).tolist())
    except (ValueError, TypeError) as exc:
        shapes = sorted({str(getattr(cell, "shape", type(cell).__name__))
                         for cell in X.reshape(-1)[:1000]})
        raise ValueError(
            f"The {name!r} parameter of {func} must hold image patches that are arrays of "
            f"one shape (C, h, w), as made by to_patches. Got cells of shapes/types "
            f"{', '.join(shapes)} instead."
        ) from exc
    if stacked.ndim != 4 or not (np.issubdtype(stacked.dtype, np.floating)
                                 or np.issubdtype(stacked.dtype, np.integer)):
        raise ValueError(
            f"The {name!r} parameter of {func} must hold image patches of shape (C, h, w), "
            f"as made by to_patches. Got cells of shape {stacked.shape[1:]} and dtype "
            f"{stacked.dtype} instead."
        )
    _, c, ph, pw = stacked.shape
    t = torch.from_numpy(stacked).view(n, rows, cols, c, ph, pw)
    return t.permute(0, 3, 1, 4, 2, 5).reshape(n, c, rows * ph, cols * pw)


def from_patches(X: Any, grid: int | Sequence[int]) -> Tensor:
    """Reassemble images from a patch table made by :func:`to_patches`.

    Parameters
    ----------
    X : ndarray of object, shape (N, rows * cols)
        Patch table, possibly with permuted columns.
    grid : int or (int, int)
        The grid ``X`` was made with.

    Returns
    -------
    Tensor of shape (N, C, H, W)
        A new tensor (``X`` is not modified).

    Examples
    --------
    >>> import torch
    >>> images = torch.rand(3, 2, 4, 6)
    >>> X = to_patches(images, grid=(2, 3))
    >>> X[:, 0] = X[[1, 2, 0], 0]          # move the top-left patches around
    >>> out = from_patches(X, grid=(2, 3))
    >>> bool(torch.equal(out[0, :, :2, :2], images[1, :, :2, :2]))
    True
    >>> bool(torch.equal(out[0, :, 2:, :], images[0, :, 2:, :]))
    True
    """
    g = check_grid(grid, func="from_patches")
    X = check_patch_table(X, g, func="from_patches")
    return assemble(X, g, func="from_patches")


def patch_scores(attributions: Tensor, grid: int | Sequence[int]) -> Tensor:
    """One value per patch from a Captum attribution: shape ``(N, rows * cols)``.

    Columns follow :func:`to_patches` (row-major), so the result lines up with
    scikit-learn's ``permutation_importance`` output and with
    :func:`importance_map`.

    Parameters
    ----------
    attributions : Tensor of shape (N, C, H, W)
        E.g. from :class:`captum_effnet.attr.PatchPermutation` with the same grid.
    grid : int or (int, int)
        The grid used for the attribution.

    Returns
    -------
    Tensor of shape (N, rows * cols)
        The mean attribution inside each patch, per sample.

    Examples
    --------
    >>> import torch
    >>> attr = torch.zeros(1, 3, 4, 4)
    >>> attr[:, :, 2:, :2] = 5.0
    >>> patch_scores(attr, grid=2)
    tensor([[0., 0., 5., 0.]])
    """
    if not isinstance(attributions, Tensor) or attributions.dim() != 4:
        raise param_error("attributions", "patch_scores",
                          "a torch.Tensor of shape (N, C, H, W)",
                          attributions if not isinstance(attributions, Tensor)
                          else f"a tensor of shape {tuple(attributions.shape)}",
                          exc=TypeError if not isinstance(attributions, Tensor)
                          else ValueError)
    rows, cols = check_grid(grid, func="patch_scores")
    h, w = attributions.shape[-2:]
    mask = patch_mask((int(h), int(w)), (rows, cols), device=attributions.device)
    return mask_values(attributions, mask)
