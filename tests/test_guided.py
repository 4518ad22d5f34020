"""Guided backprop that is guided on SiLU / ReLU6 networks, and Guided Grad-CAM."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from _nets import calibrated, no_hooks
from captum.attr import GuidedBackprop as CaptumGuidedBackprop
from captum.attr import GuidedGradCam as CaptumGuidedGradCam
from captum.attr import NoiseTunnel
from torch import nn

import captum_effnet as ce
from captum_effnet.attr import GradCam, GuidedBackprop, GuidedGradCam


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(0)
    return torch.randn(2, 3, 64, 64)


@pytest.fixture(scope="module")
def phi2(x):
    torch.manual_seed(0)
    return calibrated(ce.efficientnet(-2, num_classes=10), x)


@pytest.fixture(scope="module")
def resnet(x):
    torch.manual_seed(0)
    return calibrated(torchvision.models.resnet18(num_classes=10), x)


def plain_gradient(net, x, target):
    xg = x.clone().requires_grad_()
    out = net(xg)
    g, = torch.autograd.grad(out[torch.arange(len(x)), target].sum(), xg)
    return g


def test_captum_is_plain_gradient_on_silu_and_ours_is_guided(phi2, x):
    target = torch.tensor([3, 7])
    plain = plain_gradient(phi2, x, target)
    theirs = CaptumGuidedBackprop(phi2).attribute(x, target=target)
    # The gap: no nn.ReLU in an EfficientNet, so Captum's "guided" is the plain gradient.
    torch.testing.assert_close(theirs, plain)
    ours = GuidedBackprop(phi2).attribute(x, target=target)
    assert ours.shape == x.shape
    rel = (ours - plain).norm() / plain.norm()
    assert rel > 0.1
    assert no_hooks(phi2)


def test_equals_captum_on_a_relu_network(resnet, x):
    # ResNet-18: in-place ReLUs, each block's ReLU module used twice.
    target = [1, 4]
    ours = GuidedBackprop(resnet).attribute(x, target=target)
    theirs = CaptumGuidedBackprop(resnet).attribute(x, target=target)
    scale = float(theirs.abs().max())
    assert scale > 0
    torch.testing.assert_close(ours, theirs, atol=1e-5 * scale, rtol=1e-4)
    assert not torch.allclose(ours, plain_gradient(resnet, x, torch.tensor(target)))


def test_guided_gradcam_equals_captums_on_a_relu_network(resnet, x):
    ours = GuidedGradCam(resnet, resnet.layer4).attribute(x, target=[2, 5],
                                                          interpolate_mode="nearest")
    theirs = CaptumGuidedGradCam(resnet, resnet.layer4).attribute(x, target=[2, 5]).detach()
    scale = float(theirs.abs().max())
    assert scale > 0
    torch.testing.assert_close(ours, theirs, atol=1e-5 * scale, rtol=1e-4)


def test_hand_computed_silu_network():
    # x (2 pixels) -> conv1x1 to [x, -x] -> SiLU -> conv1x1 [1, 2] -> flatten -> [1, -1]
    conv1 = nn.Conv2d(1, 2, 1, bias=False)
    conv2 = nn.Conv2d(2, 1, 1, bias=False)
    lin = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        conv1.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        conv2.weight.copy_(torch.tensor([1.0, 2.0]).view(1, 2, 1, 1))
        lin.weight.copy_(torch.tensor([[1.0, -1.0]]))
    net = nn.Sequential(conv1, nn.SiLU(), conv2, nn.Flatten(), lin)
    x = torch.tensor([0.5, -2.0]).view(1, 1, 1, 2)

    def dsilu(z):
        s = 1 / (1 + math.exp(-z))
        return s * (1 + z * (1 - s))

    expected = []
    for xi, g in ((0.5, 1.0), (-2.0, -1.0)):  # dy/d(conv2 output) per pixel
        r0 = max(0.0, dsilu(xi) * 1.0 * g)      # guided at SiLU channel 0 (input  x)
        r1 = max(0.0, dsilu(-xi) * 2.0 * g)     # guided at SiLU channel 1 (input -x)
        expected.append(r0 - r1)                # back through conv1 (+1, -1)
    got = GuidedBackprop(net).attribute(x, target=0)
    torch.testing.assert_close(got.flatten(), torch.tensor(expected))
    # Plain gradient for comparison: dsilu(x) g - 2 dsilu(-x) g per pixel
    plain = [dsilu(xi) * g - 2 * dsilu(-xi) * g for xi, g in ((0.5, 1.0), (-2.0, -1.0))]
    assert not torch.allclose(got.flatten(), torch.tensor(plain))


def test_relu6_lite_architecture_is_guided(x):
    torch.manual_seed(0)
    lite = ce.get_model("efficientnet_lite0", num_classes=10)
    assert not any(isinstance(m, nn.ReLU) for m in lite.modules())
    assert any(isinstance(m, nn.ReLU6) for m in lite.modules())
    calibrated(lite, x)
    plain = plain_gradient(lite, x, torch.tensor([1, 2]))
    ours = GuidedBackprop(lite).attribute(x, target=[1, 2])
    assert (ours - plain).norm() / plain.norm() > 0.1
    only_silu = GuidedBackprop(lite, activations=(nn.SiLU,)).attribute(x, target=[1, 2])
    torch.testing.assert_close(only_silu, plain)  # nothing to guide: the plain gradient


def test_guided_gradcam_is_guided_times_upsampled_cam(phi2, x):
    ggc = GuidedGradCam(phi2)
    assert ggc.layer is phi2.features[-1]
    out = ggc.attribute(x, target=[3, 7])
    cam = GradCam(phi2).attribute(x, target=[3, 7])
    guided = GuidedBackprop(phi2).attribute(x, target=[3, 7])
    torch.testing.assert_close(out, guided * cam)
    assert out.shape == x.shape


def test_state_left_as_found_and_tuple_form(phi2, x):
    phi2.train()
    modes = {n: m.training for n, m in phi2.named_modules()}
    xr = x.clone()
    try:
        out = GuidedBackprop(phi2).attribute((xr,), target=1)
        assert isinstance(out, tuple) and out[0].shape == x.shape
        assert {n: m.training for n, m in phi2.named_modules()} == modes
        assert all(p.grad is None for p in phi2.parameters())
        assert not xr.requires_grad and no_hooks(phi2)
        with pytest.raises(ValueError, match=r"'target' .*Got 10 instead"):
            GuidedBackprop(phi2).attribute(x, target=10)
        assert no_hooks(phi2) and {n: m.training for n, m in phi2.named_modules()} == modes
    finally:
        phi2.eval()


def test_inside_noise_tunnel(phi2, x):
    nt = NoiseTunnel(GuidedBackprop(phi2))
    same = nt.attribute(x, nt_samples=2, stdevs=0.0, target=[3, 7])
    plain = GuidedBackprop(phi2).attribute(x, target=[3, 7])
    torch.testing.assert_close(same, plain, atol=1e-5 * float(plain.abs().max()), rtol=1e-4)


def test_bad_input(phi2, x):
    with pytest.raises(TypeError, match=r"'model' parameter of GuidedBackprop .*Got function"):
        GuidedBackprop(lambda t: t)
    with pytest.raises(TypeError, match=r"'activations' .*tuple of nn.Module subclasses"):
        GuidedBackprop(phi2, activations=[nn.SiLU])
    with pytest.raises(ValueError, match=r"'inputs' .*4-D"):
        GuidedBackprop(phi2).attribute(x[0], target=1)
    with pytest.raises(ValueError, match=r"'target' .*one class per sample"):
        GuidedGradCam(phi2).attribute(x, target=[[1, 2], [3, 4]])
    with pytest.raises(ValueError, match=r"'target' .*one class per sample"):
        GuidedBackprop(phi2).attribute(x, target=[[1, 2], [3, 4]])
