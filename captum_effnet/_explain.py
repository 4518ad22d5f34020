"""The main job: explain photos with a model and write pictures and records.

Used by ``captum-effnet explain`` and ``captum-effnet demo``; importable for
scripts that want the same files without the command line.
"""

from __future__ import annotations

import base64
import difflib
import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from . import _plugins
from ._validation import check_choice, check_int

__all__ = [
    "IMAGE_SUFFIXES",
    "Explainer",
    "Explanation",
    "expand_images",
    "load_image",
    "write_report",
]

#: File endings read as images when a folder is given.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

#: Patch grid used by the permutation method in reports (7 x 7 on a 224 crop).
PERMUTATION_GRID = (7, 7)


def expand_images(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the images they hold (sorted).

    Raises
    ------
    FileNotFoundError
        A path that does not exist.
    ValueError
        A folder that holds no image files.
    """
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"folder {str(path)!r} holds no images (looked for "
                                 f"{', '.join(IMAGE_SUFFIXES)})")
            out.extend(found)
        elif path.exists():
            out.append(path)
        else:
            raise FileNotFoundError(f"image {str(path)!r} does not exist")
    return out


def load_image(path: str | Path) -> Image.Image:
    """Read an image file fully, as RGB; errors name the file.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is not an image, or is truncated or corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {str(path)!r} does not exist")
    try:
        with Image.open(path) as img:
            img.load()  # force a full decode: truncated files fail here, not later
            return img.convert("RGB")
    except UnidentifiedImageError as exc:
        raise ValueError(f"image {str(path)!r} is not an image file PIL can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"image {str(path)!r} is truncated or corrupt ({exc})") from exc


@dataclass
class Explanation:
    """One explained image: what the model saw, predicted and attended to."""

    name: str
    image: np.ndarray  # (H, W, 3) float in [0, 1], the crop the model saw
    top_k: list[dict[str, Any]]
    target: dict[str, Any]
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (H, W)

    def record(self) -> dict[str, Any]:
        """A JSON-ready summary (no pixels)."""
        stats = {}
        for method, m in self.maps.items():
            peak = np.unravel_index(int(np.argmax(m)), m.shape)
            stats[method] = {
                "min": float(m.min()), "max": float(m.max()), "mean": float(m.mean()),
                "peak_yx": [round(peak[0] / m.shape[0], 3), round(peak[1] / m.shape[1], 3)],
                "positive_fraction": float((m > 0).mean()),
            }
        return {"image": self.name, "top_k": self.top_k, "target": self.target,
                "map_stats": stats}


class Explainer:
    """A model, its preprocessing and its class names, ready to explain photos.

    Parameters
    ----------
    model : str
        A registered model name.
    weights : str or None
        Weights for :func:`captum_effnet.get_model`.
    device : str
        ``"cpu"`` or ``"cuda"`` (``"cuda:N"``).
    """

    def __init__(self, model: str = "efficientnet_lite0", weights: str | None = "imagenet",
                 device: str = "cpu") -> None:
        from .models import get_transforms

        self.device = _device(device)
        self.model_name = model
        self.weights = weights
        self.model: nn.Module = _plugins.get_model(model, weights=weights).eval().to(self.device)
        try:
            self.transform = get_transforms(self.model)
        except TypeError:  # a plugin model without metadata: ImageNet's preprocessing
            from torchvision.transforms._presets import ImageClassification

            res = int(_plugins.registry_entry("model", model).info.get("resolution", 224))
            self.transform = ImageClassification(crop_size=res, resize_size=round(res * 256 / 224))
        meta = getattr(self.model, "meta", {}) or {}
        self.categories: list[str] | None = meta.get("categories")
        self._background: torch.Tensor | None = None

    def preprocess(self, images: Sequence[Image.Image]) -> tuple[torch.Tensor, np.ndarray]:
        """Model inputs ``(N, 3, S, S)`` and the matching display crops ``(N, S, S, 3)``."""
        from torchvision.transforms import functional as TF

        t = self.transform
        batch = torch.stack([t(img) for img in images]).to(self.device)
        crops = []
        for img in images:
            shown = TF.center_crop(TF.resize(img, t.resize_size, interpolation=t.interpolation),
                                   t.crop_size)
            crops.append(np.asarray(shown, dtype=np.float32) / 255.0)
        return batch, np.stack(crops)

    def label(self, index: int) -> str:
        """Class name of an output index (or ``"class N"`` when unknown)."""
        if self.categories and 0 <= index < len(self.categories):
            return self.categories[index]
        return f"class {index}"

    def resolve_target(self, spec: str | int, probs: torch.Tensor) -> int:
        """``"top1"``, an index, or a class name (case-insensitive) → an output index."""
        n = probs.shape[-1]
        if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
            idx = int(spec)
            if not 0 <= idx < n:
                raise ValueError(f"The 'target' parameter must be 'top1', a class index in "
                                 f"[0, {n - 1}] or a class name. Got {spec!r} instead.")
            return idx
        if spec == "top1":
            return int(probs.argmax())
        names = self.categories or []
        wanted = str(spec).strip().lower()
        for i, name in enumerate(names):
            if name.lower() == wanted or wanted in (s.strip().lower() for s in name.split(",")):
                return i
        close = difflib.get_close_matches(wanted, [c.lower() for c in names], n=3, cutoff=0.6)
        close = [next(c for c in names if c.lower() == x) for x in close]
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        known = "" if names else " (this model has no class names; use an index)"
        raise ValueError(f"The 'target' parameter names no class of {self.model_name}"
                         f"{known}: {spec!r}.{hint}")

    def default_background(self) -> torch.Tensor:
        """scikit-learn's two sample photos, preprocessed (once): what a lone image is
        permuted with."""
        if self._background is None:
            from sklearn.datasets import load_sample_images

            photos = [Image.fromarray(a) for a in load_sample_images().images]
            self._background = self.preprocess(photos)[0]
        return self._background

    def check_request(self, methods: Sequence[str], target: str | int = "top1") -> None:
        """Refuse, before any image is read, an unknown method or a class no image can have.

        ``"top1"`` depends on the image and is always accepted; class names and
        indices are checked when the class names (hence their number) are known.
        """
        for m in methods:
            check_choice(m, _plugins.list_attributions(), name="method", func="explain")
        if target != "top1" and self.categories:
            self.resolve_target(target, torch.zeros(len(self.categories)))

    @torch.inference_mode()
    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(N, n_classes)``."""
        return self.model(batch).softmax(-1).float().cpu()

    def attribute(self, method: str, batch: torch.Tensor, targets: list[int],
                  background: torch.Tensor | None = None) -> np.ndarray:
        """Maps ``(N, H, W)`` of ``method`` for ``targets``, at the input's size."""
        cls = _plugins.get_attribution(method)
        explainer = cls(self.model)
        target = torch.tensor(targets, device=batch.device)
        if method == "permutation":
            kwargs: dict[str, Any] = {"grid": PERMUTATION_GRID, "n_repeats": 2}
            if batch.shape[0] == 1:
                kwargs["background"] = (background if background is not None
                                        else self.default_background())
            attr = explainer.attribute(batch, target=target, **kwargs)
            attr = attr.sum(1) / attr.shape[1]  # the same value on every channel of a patch
        else:
            attr = explainer.attribute(batch, target=target)
            if attr.dim() == 4:
                attr = attr.sum(1)
        if attr.shape[-2:] != batch.shape[-2:]:
            attr = torch.nn.functional.interpolate(attr[:, None].float(), batch.shape[-2:],
                                                   mode="bilinear", align_corners=False)[:, 0]
        out = attr.detach().float().cpu().numpy()
        if not np.isfinite(out).all():
            raise ValueError(f"method {method!r} produced non-finite values")
        return out

    def explain(self, images: Sequence[Image.Image], names: Sequence[str], *,
                methods: Sequence[str], target: str | int = "top1",
                top_k: int = 5) -> list[Explanation]:
        """Predict and explain a batch of photos with each of ``methods``."""
        self.check_request(methods)
        check_int(top_k, name="top_k", func="explain", low=1)
        batch, crops = self.preprocess(images)
        probs = self.predict(batch)
        k = min(top_k, probs.shape[-1])
        targets = [self.resolve_target(target, p) for p in probs]
        results = []
        for i, name in enumerate(names):
            p, idx = probs[i].topk(k)
            results.append(Explanation(
                name=name, image=crops[i],
                top_k=[{"index": int(j), "label": self.label(int(j)), "probability": float(q)}
                       for q, j in zip(p, idx, strict=True)],
                target={"index": targets[i], "label": self.label(targets[i]),
                        "probability": float(probs[i, targets[i]])},
            ))
        for method in methods:
            maps = self.attribute(method, batch, targets)
            for res, m in zip(results, maps, strict=True):
                res.maps[method] = m
        return results


def _device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"The 'device' parameter must be 'cpu' or 'cuda[:N]'. "
                         f"Got {device!r} instead.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"The 'device' parameter is {device!r} but CUDA is not available "
                         f"here; use --device cpu.")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"The 'device' parameter must be 'cpu' or 'cuda[:N]'. "
                         f"Got {device!r} instead.")
    return dev


def _png_bytes(fig: Any) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def write_report(results: Sequence[Explanation], out: Path, *, title: str,
                 method_titles: dict[str, str], model: str, weights: str | None) -> dict[str, Any]:
    """A figure per photo (photo | maps | top-k) as PNG, plus one HTML page embedding them."""
    from .viz import figure

    out.mkdir(parents=True, exist_ok=True)
    sections = []
    pngs = []
    for res in results:
        t = res.target
        fig = figure(res.image, {method_titles.get(m, m): res.maps[m] for m in res.maps},
                     predictions=[(p["label"], p["probability"]) for p in res.top_k],
                     title=f"{res.name}: {t['label'].split(',')[0]} ({t['probability']:.1%})")
        data = _png_bytes(fig)
        png = out / f"{Path(res.name).stem}_report.png"
        png.write_bytes(data)
        pngs.append(str(png))
        b64 = base64.b64encode(data).decode("ascii")
        sections.append(
            f"<section><h2>{html.escape(res.name)}</h2>"
            f"<img alt='{html.escape(res.name)}' src='data:image/png;base64,{b64}'>"
            f"<pre>{html.escape(json.dumps(res.top_k, indent=1))}</pre></section>")
    page = out / "report.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;"
        "max-width:1400px;margin:auto}img{max-width:100%}pre{font-size:11px}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><p>model <code>{html.escape(model)}</code>, "
        f"weights <code>{html.escape(str(weights))}</code></p>{''.join(sections)}"
        "</body></html>", encoding="utf-8")
    return {"html": str(page), "png": pngs}
