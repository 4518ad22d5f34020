"""Bad files: missing, empty, truncated, corrupt checkpoints and images.

Every failure is a ``FileNotFoundError`` or ``ValueError`` whose message names
the file, and nothing half-loaded comes back (the call raises, and a model
given to the loader keeps its weights). ``tests/test_models_weights.py``
covers garbage bytes, a missing path and key mismatches between EfficientNets;
this file adds the rest of the list.
"""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch
from _bad_inputs import CHECKPOINT_ROWS, IMAGE_ROWS, Tiny
from PIL import Image
from skimage import data

import captum_effnet as ce
from captum_effnet._explain import load_image
from captum_effnet.models._weights import fetch_weights, load_weights


class _Evil:
    def __reduce__(self):  # a pickle that would run code if loaded unsafely
        return (print, ("pickle code ran",))


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def tiny_b_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return ce.efficientnet(-4, num_classes=3).state_dict()


def _checkpoint_bytes(state: dict[str, torch.Tensor]) -> dict[str, bytes]:
    good = _saved(state)
    return {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "one byte flipped in the zip header": b"PK\x03\x05" + good[4:],
        "unsafe pickle": pickle.dumps(_Evil()),
        "a tensor, not a state dict": _saved(torch.zeros(3)),
        "an empty dict": _saved({}),
        "a dict of strings": _saved({"a": "b"}),
        "another architecture (a plain CNN)": _saved(Tiny().state_dict()),
        "another EfficientNet (phi=-4)": good,
    }


def test_the_cases_are_the_documented_ones():
    assert list(_checkpoint_bytes({"x": torch.zeros(1)})) == list(CHECKPOINT_ROWS)


@pytest.mark.parametrize("case", list(CHECKPOINT_ROWS))
def test_bad_checkpoint_is_refused_naming_the_file(case, tmp_path, tiny_b_state, capfd):
    content, match = _checkpoint_bytes(tiny_b_state)[case], CHECKPOINT_ROWS[case]
    path = tmp_path / "weights file.pth"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        ce.get_model("efficientnet_b0", weights=path)
    assert str(path) in str(info.value)
    assert "pickle code ran" not in capfd.readouterr().out


def test_missing_checkpoint_or_a_directory_names_the_path(tmp_path):
    for path in (tmp_path / "nowhere.pth", tmp_path):
        with pytest.raises(ValueError, match=r"'weights' parameter of efficientnet_b0.*"
                                             r"(no such file|a directory)") as info:
            ce.get_model("efficientnet_b0", weights=path)
        assert repr(str(path)) in str(info.value)


def test_another_architecture_leaves_the_target_model_untouched(tmp_path, tiny_b_state):
    """load_weights on a model: refused before any tensor is copied."""
    path = tmp_path / "tiny.pth"
    torch.save(tiny_b_state, path)
    loaded = fetch_weights("efficientnet_b0", path, accepted=(), func="get_model")
    torch.manual_seed(3)
    model = ce.efficientnet(-3, num_classes=3)  # same keys for most blocks, other shapes
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"tiny\.pth.*No weights were loaded"):
        load_weights(model, loaded, model_name="efficientnet(-3)")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the oracle that this is not vacuous: the same file does load into its own shape
    own = ce.efficientnet(-4, num_classes=3)
    assert load_weights(own, loaded, model_name="efficientnet(-4)")
    assert torch.equal(own.state_dict()["classifier.1.weight"],
                       tiny_b_state["classifier.1.weight"])


# -- images ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def photo_bytes() -> dict[str, bytes]:
    img = Image.fromarray(data.chelsea()[::4, ::4])
    out = {}
    for fmt in ("PNG", "JPEG"):
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        out[fmt] = buf.getvalue()
    return out


@pytest.mark.parametrize(("case", "match"), list(IMAGE_ROWS.items()))
def test_bad_image_is_refused_naming_the_file(case, match, photo_bytes, tmp_path):
    png, jpeg = photo_bytes["PNG"], photo_bytes["JPEG"]
    content = {
        "empty": b"",
        "text": b"a cat, honestly\n",
        "truncated PNG": png[: len(png) // 2],
        "truncated JPEG": jpeg[: len(jpeg) // 2],
        "PNG with garbage after the header": png[:64] + bytes(range(256)) * 8,
    }[case]
    path = tmp_path / "photo.img"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        load_image(path)
    assert repr(str(path)) in str(info.value)


def test_missing_image_or_a_directory_names_the_path(tmp_path):
    for path in (tmp_path / "nowhere.png", tmp_path):
        with pytest.raises(FileNotFoundError) as info:
            load_image(path)
        assert repr(str(path)) in str(info.value)


def test_good_image_round_trips(photo_bytes, tmp_path):
    """The oracle for the cases above: the untruncated files load, pixel-exact for PNG."""
    path = tmp_path / "photo.png"
    path.write_bytes(photo_bytes["PNG"])
    np.testing.assert_array_equal(np.asarray(load_image(path)), data.chelsea()[::4, ::4])
    path = tmp_path / "photo.jpg"
    path.write_bytes(photo_bytes["JPEG"])
    assert np.asarray(load_image(path)).shape == data.chelsea()[::4, ::4].shape
