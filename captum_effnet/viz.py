"""Pictures of explanations: overlays and report figures on matplotlib.

The vocabulary is Captum's :func:`captum.attr.visualization.visualize_image_attr`
(``method`` = ``"heat_map"``, ``"blended_heat_map"``, ``"original_image"``,
``"masked_image"``, ``"alpha_scaling"``; ``sign`` = ``"positive"``,
``"negative"``, ``"absolute_value"``, ``"all"``), and the drawing is delegated
to it, so a map looks the same here and in Captum. What this module adds:
images and maps in any common form (tensor or array, CHW or HWC, 0..1 or
0..255), maps at feature-map resolution upsampled to the image, and the
report figure (photo | maps | top-k bar chart).

Figures are created with :class:`matplotlib.figure.Figure` directly (no
pyplot state, no GUI), so they work in threads and on headless machines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._validation import check_choice, check_real, param_error

__all__ = ["METHODS", "SIGNS", "figure", "overlay", "to_hw", "to_hwc_image"]

#: Captum's image visualisation methods.
METHODS = ("heat_map", "blended_heat_map", "original_image", "masked_image", "alpha_scaling")
#: Captum's sign conventions.
SIGNS = ("positive", "negative", "absolute_value", "all")


def _to_numpy(x: Any, name: str, func: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32).numpy()
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(x, Image.Image):
        return np.asarray(x.convert("RGB"))
    if isinstance(x, np.ndarray):
        return x
    raise param_error(name, func, "a torch.Tensor, a numpy array or a PIL image", x,
                      exc=TypeError)


def to_hwc_image(image: Any, *, func: str = "to_hwc_image") -> np.ndarray:
    """An image as a float ``(H, W, 3)`` array in ``[0, 1]``.

    Accepts ``(H, W)``, ``(H, W, C)``, ``(C, H, W)`` or ``(1, C, H, W)`` with
    ``C`` in {1, 3}, as a tensor, an array or a PIL image, with values in
    ``[0, 1]`` (floats) or ``[0, 255]`` (integers, or floats above 1).

    Examples
    --------
    >>> to_hwc_image(np.full((3, 4, 5), 255, dtype=np.uint8)).shape
    (4, 5, 3)
    """
    arr = _to_numpy(image, "image", func)
    integer = np.issubdtype(arr.dtype, np.integer)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise param_error("image", func, "an image of shape (H, W), (H, W, C) or (C, H, W)",
                          f"an array of shape {arr.shape}")
    if arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.moveaxis(arr, 0, -1)
    if arr.shape[-1] not in (1, 3):
        raise param_error("image", func, "an image with 1 or 3 channels",
                          f"an array of shape {arr.shape}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if not np.isfinite(arr).all():
        raise param_error("image", func, "finite values", "an array with NaN or inf")
    arr = arr.astype(np.float64)
    if integer or arr.max() > 1.0:
        arr = arr / 255.0
    return np.clip(arr, 0.0, 1.0)


def to_hw(attribution: Any, size: tuple[int, int] | None = None, *,
          func: str = "to_hw") -> np.ndarray:
    """A single attribution map as an ``(H, W)`` float array, upsampled to ``size``.

    Accepts ``(H, W)``, ``(1, H, W)``, ``(C, H, W)`` (summed over channels,
    as Captum does for images), ``(H, W, C)`` and a leading batch axis of 1.
    Upsampling is bilinear (``align_corners=False``), as Captum's
    ``LayerAttribution.interpolate``.

    Examples
    --------
    >>> to_hw(torch.ones(1, 1, 7, 7), size=(224, 224)).shape
    (224, 224)
    """
    arr = _to_numpy(attribution, "attribution", func).astype(np.float32)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3:
        channel_axis = 0 if arr.shape[0] <= 4 or arr.shape[-1] > 4 else -1
        arr = arr.sum(axis=channel_axis)
    if arr.ndim != 2:
        raise param_error("attribution", func,
                          "one map of shape (H, W), (1, H, W), (C, H, W) or (1, C, H, W)",
                          f"an array of shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise param_error("attribution", func, "finite values", "a map with NaN or inf")
    if size is not None:
        ok = (isinstance(size, Sequence) and not isinstance(size, str) and len(size) == 2
              and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                      for v in size))
        if not ok:
            raise param_error("size", func, "a pair (height, width) of positive ints", size)
        size = (int(size[0]), int(size[1]))
    if size is not None and tuple(arr.shape) != tuple(size):
        t = torch.from_numpy(np.ascontiguousarray(arr))[None, None]
        arr = F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)[0, 0]
        arr = arr.numpy()
    return arr


def overlay(
    image: Any,
    attribution: Any,
    *,
    method: str = "blended_heat_map",
    sign: str = "positive",
    cmap: Any = "jet",
    alpha_overlay: float = 0.5,
    outlier_perc: float = 0.0,
    show_colorbar: bool = True,
    title: str | None = None,
    ax: Axes | None = None,
    fig_size: tuple[float, float] = (5.0, 5.0),
) -> tuple[Figure, Axes]:
    """Draw ``attribution`` over ``image``, the way Captum's visualiser does.

    Parameters
    ----------
    image : tensor, array or PIL image
        The photo, in any layout :func:`to_hwc_image` accepts.
    attribution : tensor or array
        One map, any layout :func:`to_hw` accepts; upsampled to the image.
    method, sign : str
        Captum's vocabulary (:data:`METHODS`, :data:`SIGNS`).
    cmap, alpha_overlay, outlier_perc, show_colorbar, title
        As in :func:`captum.attr.visualization.visualize_image_attr`. Our
        defaults differ: ``method="blended_heat_map"``, ``sign="positive"``
        (a CAM is non-negative), ``cmap="jet"``, ``outlier_perc=0`` (the
        map's maximum is the top of the scale), ``show_colorbar=True``.
    ax : matplotlib Axes, optional
        Draw into this axes; by default a new figure is made.
    fig_size : tuple of float
        Size of a new figure, in inches.

    Returns
    -------
    (Figure, Axes)

    Examples
    --------
    >>> fig, ax = overlay(torch.rand(3, 32, 32), torch.rand(1, 1, 4, 4), title="demo")
    >>> ax.get_title()
    'demo'
    """
    from captum.attr import visualization as viz

    check_choice(method, METHODS, name="method", func="overlay")
    check_choice(sign, SIGNS, name="sign", func="overlay")
    check_real(alpha_overlay, name="alpha_overlay", func="overlay", low=0.0, high=1.0)
    check_real(outlier_perc, name="outlier_perc", func="overlay", low=0.0, high=100.0,
               closed="left")
    img = to_hwc_image(image, func="overlay")
    att = to_hw(attribution, size=img.shape[:2], func="overlay")
    if ax is None:
        fig = Figure(figsize=fig_size)
        ax = fig.add_subplot()
    else:
        fig = ax.figure  # type: ignore[assignment]
    viz.visualize_image_attr(
        att[..., None], img, method=method, sign=sign, plt_fig_axis=(fig, ax),
        outlier_perc=outlier_perc, cmap=cmap, alpha_overlay=alpha_overlay,
        show_colorbar=show_colorbar, title=title, use_pyplot=False,
    )
    return fig, ax


def figure(
    image: Any,
    attributions: Mapping[str, Any],
    *,
    predictions: Sequence[tuple[str, float]] | None = None,
    title: str | None = None,
    cmap: Any = "jet",
    panel_size: float = 3.2,
) -> Figure:
    """One row: the photo, one overlay per attribution, and a top-k bar chart.

    Parameters
    ----------
    image : tensor, array or PIL image
        The photo as the model saw it (after resize and crop).
    attributions : mapping of str to map
        Panel title → attribution map, drawn in order.
    predictions : sequence of (label, probability), optional
        Drawn as a horizontal bar chart, best on top.
    title : str, optional
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = figure(torch.rand(3, 32, 32), {"Grad-CAM": torch.rand(4, 4)},
    ...              predictions=[("cat", 0.9), ("dog", 0.1)], title="demo")
    >>> len(fig.axes) >= 3
    True
    """
    img = to_hwc_image(image, func="figure")
    if not isinstance(attributions, Mapping):
        raise param_error("attributions", "figure", "a mapping of panel titles to maps",
                          attributions, exc=TypeError)
    if not attributions:
        raise param_error("attributions", "figure", "a non-empty mapping of panel titles to "
                          "maps", attributions)
    panel_size = check_real(panel_size, name="panel_size", func="figure", low=0.0,
                            closed="neither")
    n = 1 + len(attributions) + (1 if predictions else 0)
    fig = Figure(figsize=(panel_size * n + (1.2 if predictions else 0), panel_size + 0.6),
                 layout="constrained")
    widths = [1.0] * (1 + len(attributions)) + ([1.2] if predictions else [])
    axes = fig.subplots(1, n, width_ratios=widths, squeeze=False)[0]
    axes[0].imshow(img)
    axes[0].set_title("photo")
    axes[0].axis("off")
    for ax, (name, att) in zip(axes[1:], attributions.items(), strict=False):
        overlay(img, att, ax=ax, title=name, cmap=cmap, show_colorbar=True)
        ax.axis("off")
    if predictions:
        ax = axes[-1]
        labels = [_short(label) for label, _ in predictions][::-1]
        probs = [float(p) for _, p in predictions][::-1]
        ax.barh(range(len(probs)), probs, color="tab:blue")
        ax.set_yticks(range(len(probs)), labels, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability")
        ax.set_title(f"top-{len(probs)}")
        for i, p in enumerate(probs):
            inside = p > 0.75  # the label goes inside long bars, in white
            ax.text(p - 0.02 if inside else p + 0.02, i, f"{p:.1%}", va="center", fontsize=8,
                    ha="right" if inside else "left", color="white" if inside else "black")
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def _short(label: str, width: int = 22) -> str:
    label = label.split(",")[0]
    return label if len(label) <= width else label[: width - 1] + "…"
