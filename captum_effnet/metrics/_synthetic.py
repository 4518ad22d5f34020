"""A synthetic image data set whose ground truth is known: where the object is.

Each image is a smooth random texture with one bright shape on it; the class
is the shape. The shape lies inside one cell of a ``grid x grid`` partition
of the image (the cell is drawn at random), so the ground truth is known at
three levels: the object's pixels (``masks``), its bounding box (``boxes``)
and the patch that holds it (``cells``, in
:func:`~captum_effnet.inspection.to_patches` row-major order). The same
textures without the objects are returned too (``backgrounds``): replacing a
patch by the background's patch removes exactly the object.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .._validation import check_int, check_real, param_error

__all__ = ["SHAPES", "SyntheticObjects", "make_synthetic_objects"]

#: Class names, in label order.
SHAPES: tuple[str, ...] = ("square", "disk", "cross", "ring")

_FUNC = "make_synthetic_objects"


@dataclass(frozen=True)
class SyntheticObjects:
    """The images and their ground truth (returned by :func:`make_synthetic_objects`).

    Attributes
    ----------
    images : Tensor of shape (N, 3, S, S), float32 in [0, 1]
        Texture plus object.
    labels : Tensor of shape (N,), int64
        The shape's index in :data:`SHAPES`.
    masks : Tensor of shape (N, 1, S, S), bool
        The object's pixels.
    boxes : Tensor of shape (N, 4), int64
        ``(x_min, y_min, x_max, y_max)`` of the object's pixels, ``max``
        exclusive (columns ``x_min .. x_max - 1``).
    cells : Tensor of shape (N,), int64
        Index of the grid cell holding the object, row-major
        (``row * grid + col``).
    backgrounds : Tensor of shape (N, 3, S, S), float32
        The same textures without the object.
    grid : int
        Cells per side.
    class_names : tuple of str
        ``SHAPES[:n_classes]``.
    """

    images: Tensor
    labels: Tensor
    masks: Tensor
    boxes: Tensor
    cells: Tensor
    backgrounds: Tensor
    grid: int
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _shape_mask(kind: int, size: int) -> Tensor:
    """A ``(size, size)`` bool stencil of one shape."""
    c = (size - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                            torch.arange(size, dtype=torch.float32), indexing="ij")
    r = torch.sqrt((yy - c) ** 2 + (xx - c) ** 2)
    if kind == 0:  # square, a little smaller than the cell so its area is close to the disk's
        m = ((yy - c).abs() <= 0.4 * size) & ((xx - c).abs() <= 0.4 * size)
    elif kind == 1:  # disk
        m = r <= size / 2
    elif kind == 2:  # cross (plus sign)
        arm = max(1.0, size / 6)
        m = ((yy - c).abs() <= arm) | ((xx - c).abs() <= arm)
    else:  # ring
        m = (r <= size / 2) & (r >= size / 4)
    return m


def make_synthetic_objects(
    n_samples: int,
    *,
    n_classes: int = 3,
    image_size: int = 64,
    grid: int = 4,
    object_size: int | None = None,
    jitter: int = 1,
    contrast: float = 0.5,
    seed: int | None = 0,
) -> SyntheticObjects:
    """Images of one bright shape at a known, random place on a texture.

    Parameters
    ----------
    n_samples : int
        Number of images (>= 1). Classes are balanced (label ``i % n_classes``
        before shuffling).
    n_classes : int, default 3
        Number of shapes, 2 to 4: ``"square"``, ``"disk"``, ``"cross"``,
        ``"ring"`` in that order.
    image_size : int, default 64
        Height and width ``S``; a multiple of ``grid``.
    grid : int, default 4
        The object lies inside one of ``grid x grid`` cells.
    object_size : int, optional
        Side of the shape's square stencil; default ``3/4`` of a cell. At
        most the cell side minus ``2 * jitter``.
    jitter : int, default 1
        The object is centred in its cell and then shifted by up to this many
        pixels in each direction; at most ``(cell side - 3) // 2``.
    contrast : float, default 0.5
        Amplitude of the background texture in (0, 1]; the texture lies in
        ``[0, contrast]`` and the object's colour in ``[0.75, 1]`` per
        channel (drawn per image, so colour says nothing about the class).
    seed : int or None, default 0
        Seed of a private generator (the global random state is untouched);
        ``None`` draws fresh randomness.

    Returns
    -------
    SyntheticObjects

    Examples
    --------
    >>> ds = make_synthetic_objects(6, image_size=32, grid=2)
    >>> ds.images.shape, ds.labels.tolist(), ds.class_names
    (torch.Size([6, 3, 32, 32]), [1, 2, 1, 0, 2, 0], ('square', 'disk', 'cross'))
    >>> bool(ds.masks[0].any()), ds.cells.max().item() < 4
    (True, True)
    """
    n_samples = check_int(n_samples, name="n_samples", func=_FUNC, low=1)
    n_classes = check_int(n_classes, name="n_classes", func=_FUNC, low=2, high=len(SHAPES))
    grid = check_int(grid, name="grid", func=_FUNC, low=1)
    image_size = check_int(image_size, name="image_size", func=_FUNC, low=4 * grid)
    if image_size % grid:
        raise param_error("image_size", _FUNC, f"a multiple of grid={grid}", image_size)
    cell = image_size // grid
    jitter = check_int(jitter, name="jitter", func=_FUNC, low=0, high=(cell - 3) // 2)
    if object_size is None:
        object_size = max(3, min((3 * cell) // 4, cell - 2 * jitter))
    object_size = check_int(object_size, name="object_size", func=_FUNC, low=3,
                            high=cell - 2 * jitter)
    contrast = check_real(contrast, name="contrast", func=_FUNC, low=0.0, high=1.0,
                          closed="right")
    if seed is not None:
        seed = check_int(seed, name="seed", func=_FUNC, low=0)

    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)

    n, s = n_samples, image_size
    # Texture: coarse noise (8 x 8) upsampled plus a little fine grain.
    coarse = torch.rand(n, 3, 8, 8, generator=gen)
    tex = F.interpolate(coarse, size=(s, s), mode="bicubic", align_corners=False)
    tex = 0.75 * tex + 0.25 * torch.rand(n, 3, s, s, generator=gen)
    backgrounds = (tex.clamp(0, 1) * contrast).float()

    labels = torch.arange(n) % n_classes
    labels = labels[torch.randperm(n, generator=gen)]
    cells = torch.randint(grid * grid, (n,), generator=gen)
    shift = torch.randint(-jitter, jitter + 1, (n, 2), generator=gen)
    colours = 0.75 + 0.25 * torch.rand(n, 3, 1, 1, generator=gen)
    stencils = [_shape_mask(k, object_size) for k in range(n_classes)]

    masks = torch.zeros(n, 1, s, s, dtype=torch.bool)
    boxes = torch.zeros(n, 4, dtype=torch.long)
    offset = (cell - object_size) // 2
    for i in range(n):
        row, col = divmod(int(cells[i]), grid)
        top = row * cell + offset + int(shift[i, 0])
        left = col * cell + offset + int(shift[i, 1])
        stencil = stencils[int(labels[i])]
        masks[i, 0, top:top + object_size, left:left + object_size] = stencil
        ys, xs = torch.nonzero(stencil, as_tuple=True)
        boxes[i] = torch.tensor([left + int(xs.min()), top + int(ys.min()),
                                 left + int(xs.max()) + 1, top + int(ys.max()) + 1])
    images = torch.where(masks, colours.expand(n, 3, 1, 1), backgrounds)
    return SyntheticObjects(images=images.contiguous(), labels=labels, masks=masks,
                            boxes=boxes, cells=cells, backgrounds=backgrounds, grid=grid,
                            class_names=SHAPES[:n_classes])
