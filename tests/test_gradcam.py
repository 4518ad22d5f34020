"""Grad-CAM family: oracles (Captum, pytorch-grad-cam, hand-computed), shortcut, safety."""

from __future__ import annotations

import gc as gcmod
import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from _nets import calibrated, no_hooks
from captum.attr import (
    GradientAttribution,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import captum_effnet as ce
from captum_effnet.attr import (
    GradCam,
    GradCamPlusPlus,
    HiResCam,
    LayerCam,
    XGradCam,
)
from captum_effnet.attr._grad_cam import BUILTIN_ATTRIBUTIONS

CAMS = [GradCam, GradCamPlusPlus, XGradCam, LayerCam, HiResCam]


@pytest.fixture(scope="module")
def b0():
    return calibrated(torchvision.models.efficientnet_b0(num_classes=20))


@pytest.fixture(scope="module")
def phi2():
    return calibrated(ce.efficientnet(-2, num_classes=20))


@pytest.fixture(scope="module")
def x64():
    torch.manual_seed(1)
    return torch.randn(3, 3, 64, 64)


def layers_of(net):
    f = net.features
    return {
        "last block (shortcut)": f[-1],
        "mid block with residual": f[3][1],
        "block body before `+= input`": f[3][1].block,
        "batch-norm before in-place SiLU": f[-1][1],
    }


# --------------------------------------------------------------------- oracles
@pytest.mark.parametrize("which", ["b0", "phi2"])
def test_equals_captum_layergradcam(which, request, x64):
    net = request.getfixturevalue(which)
    targets = [2, 7, 19]
    for name, layer in layers_of(net).items():
        ref = LayerGradCam(net, layer).attribute(x64, target=targets).detach()
        scale = float(ref.abs().max())
        assert scale > 1e-3, name  # a real signal, not float noise
        raw = GradCam(net, layer).attribute(x64, target=targets, relu_attributions=False,
                                            interpolate_mode=None)
        assert raw.shape == ref.shape
        torch.testing.assert_close(raw, ref, atol=1e-5 * scale, rtol=1e-4, msg=name)
        # Same ReLU and upsampling on Captum's side.
        ours = GradCam(net, layer).attribute(x64, target=targets)
        theirs = LayerAttribution.interpolate(
            LayerGradCam(net, layer).attribute(x64, target=targets, relu_attributions=True),
            (64, 64), "bilinear").detach()
        torch.testing.assert_close(ours, theirs, atol=1e-5 * scale, rtol=1e-4, msg=name)


def _pgc_maps(pgc_cls, net, layer, x, targets, **kw):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with pgc_cls(model=net, target_layers=[layer], **kw) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])


@pytest.mark.parametrize(
    ("ours", "theirs", "kw"),
    [
        (GradCam, "GradCAM", {}),
        (GradCamPlusPlus, "GradCAMPlusPlus", {"eps": 1e-6}),
        (XGradCam, "XGradCAM", {}),
        (LayerCam, "LayerCAM", {}),
        (HiResCam, "HiResCAM", {}),
    ],
)
def test_agrees_with_pytorch_grad_cam(ours, theirs, kw, phi2):
    import pytorch_grad_cam

    torch.manual_seed(3)
    x = torch.randn(2, 3, 128, 128)
    targets = [4, 11]
    for layer in (phi2.features[-1], phi2.features[4]):
        ref = _pgc_maps(getattr(pytorch_grad_cam, theirs), phi2, layer, x, targets)
        mine = ours(phi2, layer, **kw).attribute(x, target=targets, normalize=True)
        assert mine.shape == (2, 1, 128, 128)
        for i in range(2):
            a, b = mine[i, 0].flatten().numpy(), ref[i].flatten()
            assert b.std() > 0
            assert np.corrcoef(a, b)[0, 1] > 0.99


def test_hand_computed_maps_shortcut_layer():
    # conv 1x1 (1 -> 2 channels, weights +1 and -1), GAP, linear with set weights.
    conv = nn.Conv2d(1, 2, 1, bias=False)
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        lin.weight.copy_(torch.tensor([[2.0, 1.0], [0.5, -3.0]]))
        lin.bias.zero_()
    net = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), lin)
    x = torch.tensor([[1.0, -2.0, 3.0], [0.0, 4.0, -1.0], [2.0, 2.0, -3.0]]).view(1, 1, 3, 3)
    cam = GradCam(net, conv)
    # class 0: alpha = (2/9, 1/9) -> 2/9 x - 1/9 x = x/9 ; class 1: (0.5/9)x + (3/9)x = 3.5x/9
    got = cam.attribute(x, target=[[0, 1]], relu_attributions=False, interpolate_mode=None)
    torch.testing.assert_close(got[0, 0], x[0, 0] / 9)
    torch.testing.assert_close(got[0, 1], 3.5 * x[0, 0] / 9)
    relu = cam.attribute(x, target=0, interpolate_mode=None)
    torch.testing.assert_close(relu[0, 0], torch.clamp(x[0, 0], min=0) / 9)


def test_hand_computed_maps_autograd_layer():
    # conv 1x1 (+1, -1), flatten, linear: the gradient differs at every position.
    conv = nn.Conv2d(1, 2, 1, bias=False)
    lin = nn.Linear(8, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        # dy/dA[c=0] = [[1, 2], [3, 4]], dy/dA[c=1] = [[0, 0], [0, 8]]
        lin.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 8.0]]))
    net = nn.Sequential(conv, nn.Flatten(), lin)
    x = torch.tensor([[1.0, 2.0], [-1.0, 3.0]]).view(1, 1, 2, 2)
    a0, a1 = x[0, 0], -x[0, 0]
    # Grad-CAM: alpha = (2.5, 2.0) -> 2.5 x - 2 x = 0.5 x
    got = GradCam(net, conv).attribute(x, target=0, relu_attributions=False,
                                       interpolate_mode=None)
    torch.testing.assert_close(got[0, 0], 0.5 * x[0, 0])
    # HiResCAM: g0 * a0 + g1 * a1 element-wise
    g0 = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    g1 = torch.tensor([[0.0, 0.0], [0.0, 8.0]])
    got = HiResCam(net, conv).attribute(x, target=0, relu_attributions=False,
                                        interpolate_mode=None)
    torch.testing.assert_close(got[0, 0], g0 * a0 + g1 * a1)
    # LayerCAM: ReLU(g) is g here (all >= 0), so same as HiResCAM
    got = LayerCam(net, conv).attribute(x, target=0, relu_attributions=False,
                                        interpolate_mode=None)
    torch.testing.assert_close(got[0, 0], g0 * a0 + g1 * a1)
    # XGradCAM: alpha_c = sum(g_c a_c) / sum(a_c): (1+4-3+12)/5 = 14/5 ; (0+0+0-24)/-5 = 24/5
    got = XGradCam(net, conv, eps=0.0).attribute(x, target=0, relu_attributions=False,
                                                 interpolate_mode=None)
    torch.testing.assert_close(got[0, 0], 14 / 5 * a0 + 24 / 5 * a1)


def test_gradcam_plus_plus_paper_formula_on_hand_values():
    # Same tiny net; Grad-CAM++ eq. 19 with S_c = sum(A_c): a = g^2 / (2 g^2 + S g^3).
    conv = nn.Conv2d(1, 2, 1, bias=False)
    lin = nn.Linear(8, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        lin.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 8.0]]))
    net = nn.Sequential(conv, nn.Flatten(), lin)
    x = torch.tensor([[1.0, 2.0], [-1.0, 3.0]]).view(1, 1, 2, 2)
    # channel 0: S = 5, g = 1,2,3,4 -> a = 1/(2+5g): 1/7, 1/12, 1/17, 1/22
    w0 = 1 / 7 + 2 / 12 + 3 / 17 + 4 / 22
    # channel 1: S = -5, g = 0,0,0,8 -> a = 1/(2-40) < 0 ; weight = 8 * (1/-38)
    w1 = 8 / -38
    got = GradCamPlusPlus(net, conv).attribute(x, target=0, relu_attributions=False,
                                               interpolate_mode=None)
    torch.testing.assert_close(got[0, 0], w0 * x[0, 0] + w1 * -x[0, 0])


# ------------------------------------------------------------------ shortcut
@pytest.mark.parametrize("cls", CAMS)
def test_shortcut_equals_autograd_path(cls, b0, phi2, x64):
    cam = cls(b0 if cls is GradCam else phi2)
    for kwargs in ({"target": [1, 5, 9]}, {"top_k": 5}, {"target": [[0, 3], [19, 2], [7, 7]]}):
        fast = cam.attribute(x64, relu_attributions=False, interpolate_mode=None, **kwargs)
        slow = cam.attribute(x64, relu_attributions=False, interpolate_mode=None,
                             shortcut=False, **kwargs)
        scale = float(fast.abs().max())
        assert scale > 1e-3
        # Grad-CAM on b0 (values ~1): the absolute bound of the issue. The other
        # variants' maps reach ~100 (XGrad-CAM divides by activation sums): relative.
        assert (fast - slow).abs().max() < 1e-5 * (1 if cls is GradCam else max(1.0, scale))


def test_shortcut_runs_one_inference_forward_and_no_backward(phi2, x64, monkeypatch):
    seen = []
    handle = phi2.register_forward_pre_hook(
        lambda m, i: seen.append((torch.is_inference_mode_enabled(), torch.is_grad_enabled())))

    def no_grad_allowed(*a, **k):
        raise AssertionError("autograd used on the shortcut path")

    cam = GradCam(phi2)
    cam.attribute(x64, top_k=3)  # first call may probe the head once
    seen.clear()
    try:
        monkeypatch.setattr(torch.autograd, "grad", no_grad_allowed)
        out = cam.attribute(x64, top_k=4)
    finally:
        handle.remove()
    assert seen == [(True, False)]
    assert out.shape == (3, 4, 64, 64)
    assert not out.is_inference()
    out /= out.max()  # usable like any tensor (no inference-tensor restrictions)


def test_shortcut_refused_when_something_else_follows_the_layer(phi2, x64):
    calls = []

    def wrapped(x):
        calls.append(torch.is_inference_mode_enabled())
        return phi2(x).log_softmax(-1)  # not a linear function of the pooled features

    layer = phi2.features[-1]
    out = GradCam(wrapped, layer).attribute(x64, target=[1, 2, 3], relu_attributions=False,
                                            interpolate_mode=None)
    assert calls == [False]
    ref = LayerGradCam(wrapped, layer).attribute(x64, target=[1, 2, 3]).detach()
    torch.testing.assert_close(out, ref, atol=1e-5 * float(ref.abs().max()), rtol=1e-4)


def test_resnet_head_uses_the_shortcut_too():
    net = calibrated(torchvision.models.resnet18(num_classes=10))
    x = torch.randn(2, 3, 64, 64)
    cam = GradCam(net)
    fast = cam.attribute(x, target=[1, 2], interpolate_mode=None, relu_attributions=False)
    assert cam.layer is net.layer4 and cam._head is net.fc
    ref = LayerGradCam(net, net.layer4).attribute(x, target=[1, 2]).detach()
    torch.testing.assert_close(fast, ref, atol=1e-5 * float(ref.abs().max()), rtol=1e-4)


# ---------------------------------------------------------------- many targets
def test_many_targets_equal_separate_calls_from_one_forward(phi2, x64):
    forwards = []
    handle = phi2.register_forward_pre_hook(lambda m, i: forwards.append(1))
    try:
        for shortcut, layer in ((True, phi2.features[-1]), (False, phi2.features[5])):
            cam = GradCam(phi2, layer)
            cam.attribute(x64, target=0, shortcut=shortcut)  # warm (head probe)
            forwards.clear()
            many = cam.attribute(x64, target=[[3, 8], [0, 1], [19, 4]], shortcut=shortcut)
            assert len(forwards) == 1
            assert many.shape == (3, 2, 64, 64)
            for k, col in enumerate(([3, 0, 19], [8, 1, 4])):
                single = cam.attribute(x64, target=col, shortcut=shortcut)
                torch.testing.assert_close(many[:, k:k + 1], single, atol=1e-6, rtol=1e-5)
    finally:
        handle.remove()


def test_top_k_picks_the_highest_scores(phi2, x64):
    cam = GradCam(phi2)
    out = cam.attribute(x64, top_k=3)
    with torch.no_grad():
        expected = phi2(x64).topk(3, dim=1).indices
    assert torch.equal(cam.last_targets, expected)
    torch.testing.assert_close(out, cam.attribute(x64, target=expected))
    # target=None is the predicted class
    cam.attribute(x64)
    assert torch.equal(cam.last_targets[:, 0], expected[:, 0])


def test_tensor_targets_and_channel_terms(phi2, x64):
    cam = GradCam(phi2)
    a = cam.attribute(x64, target=torch.tensor([4, 5, 6]))
    b = cam.attribute(x64, target=[4, 5, 6])
    torch.testing.assert_close(a, b)
    terms = cam.attribute(x64, target=4, attr_dim_summation=False, relu_attributions=False,
                          interpolate_mode=None)
    summed = cam.attribute(x64, target=4, relu_attributions=False, interpolate_mode=None)
    assert terms.shape == (3, phi2.features[-1][0].out_channels, 2, 2)
    torch.testing.assert_close(terms.sum(1, keepdim=True), summed, atol=1e-6, rtol=1e-5)
    norm = cam.attribute(x64, target=4, normalize=True, relu_attributions=False)
    assert norm.amin((2, 3)).abs().max() < 1e-6 and (norm.amax((2, 3)) - 1).abs().max() < 1e-6


# -------------------------------------------------------------------- safety
def test_inplace_silu_and_residual_cannot_corrupt_the_activations(phi2, x64):
    f = phi2.features
    targets = torch.tensor([2, 7, 19])

    def oracle_block():
        # A = block(input) as a leaf, then `A + input` and the rest, no hooks at all.
        with torch.no_grad():
            inp = f[3][0](f[:3](x64))
            a = f[3][1].block(inp)
        a = a.clone().requires_grad_()
        h = f[4:](a + inp)
        y = phi2.classifier(torch.flatten(phi2.avgpool(h), 1))
        return a, y

    def oracle_bn():
        with torch.no_grad():
            a = f[-1][1](f[-1][0](f[:-1](x64)))
        a = a.clone().requires_grad_()
        y = phi2.classifier(torch.flatten(phi2.avgpool(F.silu(a)), 1))
        return a, y

    for layer, oracle in ((f[3][1].block, oracle_block), (f[-1][1], oracle_bn)):
        a, y = oracle()
        g, = torch.autograd.grad(y.gather(1, targets[:, None]).sum(), a)
        ref = (g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True).detach()
        with torch.no_grad():  # also under no_grad, as NoiseTunnel and the metrics call it
            got = GradCam(phi2, layer).attribute(x64, target=targets, relu_attributions=False,
                                                 interpolate_mode=None)
        torch.testing.assert_close(got, ref, atol=1e-5 * float(ref.abs().max()), rtol=1e-4)

        # The hazard is real: a hook that keeps the output tensor sees it overwritten
        # (by `result += input`, or by the in-place SiLU).
        kept = []

        def keep(mod, inp, out, kept=kept):
            kept.append(out)

        h = layer.register_forward_hook(keep)
        try:
            with torch.no_grad():
                phi2(x64)
        finally:
            h.remove()
        assert not torch.allclose(kept[0], a.detach(), atol=1e-3)


def test_model_state_is_left_as_found(phi2, x64):
    net = phi2
    net.zero_grad(set_to_none=True)  # pytorch-grad-cam's backward() left gradients
    net.train()
    net.features[2].eval()
    modes = {n: m.training for n, m in net.named_modules()}
    net.classifier[1].weight.requires_grad_(False)
    flags = {n: p.requires_grad for n, p in net.named_parameters()}
    sentinel = torch.full_like(net.features[0][0].weight, 7.0)
    net.features[0][0].weight.grad = sentinel.clone()
    bn = net.features[1][0].block[0][1]
    stats = bn.running_mean.clone()
    try:
        for cls in CAMS:
            for shortcut in (True, False):
                cls(net).attribute(x64, top_k=2, shortcut=shortcut)
                cls(net, net.features[5]).attribute(x64, target=1, shortcut=shortcut)
        assert {n: m.training for n, m in net.named_modules()} == modes
        assert {n: p.requires_grad for n, p in net.named_parameters()} == flags
        assert torch.equal(net.features[0][0].weight.grad, sentinel)
        assert all(p.grad is None for n, p in net.named_parameters() if n != "features.0.0.weight")
        assert torch.equal(bn.running_mean, stats)
        assert no_hooks(net)
        assert torch.is_grad_enabled()
    finally:
        net.features[0][0].weight.grad = None
        net.classifier[1].weight.requires_grad_(True)
        net.eval()


def test_hooks_removed_and_state_restored_after_errors(phi2, x64):
    cam = GradCam(phi2, phi2.features[5])
    with pytest.raises(ValueError, match="target"):
        cam.attribute(x64, target=20)  # raised after the forward, hooks in place
    assert no_hooks(phi2) and torch.is_grad_enabled()

    class Boom(RuntimeError):
        pass

    def explode(mod, inp, out):
        raise Boom("downstream failure")

    phi2.train()
    h = phi2.features[6].register_forward_hook(explode)
    try:
        for shortcut in (True, False):
            with pytest.raises(Boom):
                GradCam(phi2).attribute(x64, target=1, shortcut=shortcut)
            with pytest.raises(Boom):
                cam.attribute(x64, target=1, shortcut=shortcut)
    finally:
        h.remove()
    assert no_hooks(phi2) and torch.is_grad_enabled()
    assert all(m.training for m in phi2.modules())
    phi2.eval()


def test_batch_norm_train_mode_is_switched_off_for_the_call(phi2):
    torch.manual_seed(5)
    x = torch.randn(4, 3, 64, 64)
    phi2.train()
    try:
        batch = GradCam(phi2).attribute(x, target=3, shortcut=False)
        alone = GradCam(phi2).attribute(x[:1], target=3, shortcut=False)
        # Each sample's map does not depend on the rest of the batch.
        scale = float(alone.abs().max())
        torch.testing.assert_close(batch[:1], alone, atol=1e-5 * scale, rtol=1e-4)
        coupled = GradCam(phi2, force_eval=False)
        with torch.no_grad():
            stats = [m.running_mean.clone() for m in phi2.modules()
                     if isinstance(m, nn.BatchNorm2d)]
        b = coupled.attribute(x, target=3, shortcut=False)
        assert (b[:1] - alone).abs().max() > 1e-2 * scale  # what force_eval prevents
        after = [m.running_mean for m in phi2.modules() if isinstance(m, nn.BatchNorm2d)]
        assert any(not torch.equal(s, a) for s, a in zip(stats, after, strict=True))
    finally:
        calibrated(phi2)  # restore the statistics the other tests use


def test_no_memory_growth_over_repeated_calls(phi2, x64):
    def live_tensors():
        gcmod.collect()
        return sum(1 for o in gcmod.get_objects() if issubclass(type(o), torch.Tensor))

    cams = [GradCam(phi2), GradCamPlusPlus(phi2, phi2.features[5])]
    for cam in cams:
        cam.attribute(x64, top_k=2)
    before = live_tensors()
    for _ in range(5):
        for cam in cams:
            out = cam.attribute(x64, top_k=2)
    del out
    assert live_tensors() <= before


# ---------------------------------------------------------- Captum contract
def test_is_a_captum_layer_and_gradient_attribution(phi2):
    sig = list(inspect.signature(GradCam.attribute).parameters)
    captum_sig = list(inspect.signature(LayerGradCam.attribute).parameters)
    assert sig[: len(captum_sig)] == captum_sig
    for cls in CAMS:
        cam = cls(phi2)
        assert isinstance(cam, LayerAttribution) and isinstance(cam, GradientAttribution)
        assert cam.has_convergence_delta() is False
        assert cam.multiplies_by_inputs is False
        assert hasattr(cls.attribute, "__wrapped__")  # NoiseTunnel calls it
    assert [c.get_name() for c in CAMS] == [
        "Grad-CAM", "Grad-CAM++", "XGrad-CAM", "LayerCAM", "HiResCAM"]


def test_registered_through_the_plugin_hook():
    for name, cls in BUILTIN_ATTRIBUTIONS.items():
        assert ce.get_attribution(name) is cls
        assert name in ce.list_attributions()
    assert {"gradcam", "gradcam++"} <= set(BUILTIN_ATTRIBUTIONS)


def test_dataparallel_path_matches(phi2, x64):
    dp = nn.DataParallel(phi2)
    got = GradCam(dp, phi2.features[5]).attribute(x64, target=[1, 2, 3])
    ref = GradCam(phi2, phi2.features[5]).attribute(x64, target=[1, 2, 3])
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=1e-5)


# ------------------------------------------------------- the rest of Captum
def test_inside_noise_tunnel(phi2, x64):
    cam = GradCam(phi2)
    plain = cam.attribute(x64, target=[1, 2, 3])
    nt = NoiseTunnel(cam)
    same = nt.attribute(x64, nt_type="smoothgrad", nt_samples=3, stdevs=0.0, target=[1, 2, 3])
    torch.testing.assert_close(same, plain, atol=1e-5 * float(plain.abs().max()), rtol=1e-4)
    torch.manual_seed(0)
    smooth = nt.attribute(x64, nt_type="smoothgrad", nt_samples=4, stdevs=0.2,
                          target=[1, 2, 3], top_k=None)
    assert smooth.shape == plain.shape and torch.isfinite(smooth).all()
    assert not torch.allclose(smooth, plain)
    many = nt.attribute(x64, nt_samples=2, stdevs=0.0, target=[[1, 2], [3, 4], [5, 6]])
    assert many.shape == (3, 2, 64, 64)


def test_with_captum_metrics(phi2, x64):
    from captum.metrics import infidelity, sensitivity_max

    cam = GradCam(phi2)
    targets = [1, 2, 3]
    attr = cam.attribute(x64, target=targets)

    def perturb(inputs):
        noise = torch.randn_like(inputs) * 0.05
        return noise, inputs - noise

    torch.manual_seed(0)
    inf = infidelity(phi2, perturb, x64, attr.expand_as(x64), target=targets, n_perturb_samples=2)
    assert inf.shape == (3,) and torch.isfinite(inf).all()
    sens = sensitivity_max(cam.attribute, x64, target=targets, n_perturb_samples=2)
    assert sens.shape == (3,) and torch.isfinite(sens).all() and (sens >= 0).all()


def test_with_captum_visualization(phi2, x64):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from captum.attr import visualization as viz

    attr = GradCam(phi2).attribute(x64[:1], target=3)
    img = (x64[0] - x64[0].min()) / (x64[0].max() - x64[0].min())
    fig, _ax = viz.visualize_image_attr(
        attr[0].permute(1, 2, 0).numpy(), img.permute(1, 2, 0).numpy(),
        method="blended_heat_map", sign="positive", use_pyplot=False)
    assert fig is not None
    plt.close(fig)


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "exc", "pattern"),
    [
        (lambda c, x: c.attribute(x[0]), ValueError,
         r"'inputs' parameter of GradCam.attribute must be a 4-D .*shape \(3, 64, 64\)"),
        (lambda c, x: c.attribute(x[:, :1]), ValueError,
         r"'inputs' .* 3 channels.*\(3, 1, 64, 64\)"),
        (lambda c, x: c.attribute((x * 255).to(torch.uint8)), TypeError,
         r"'inputs' .*floating-point.*torch.uint8"),
        (lambda c, x: c.attribute(x, target=20), ValueError,
         r"'target' .*\[0, 20\).*Got 20 instead"),
        (lambda c, x: c.attribute(x, target=-1), ValueError, r"'target' .*Got -1 instead"),
        (lambda c, x: c.attribute(x, target=[1, 2]), ValueError,
         r"'target' .*list or 1-D tensor of 3 ints.*Got \[1, 2\] instead"),
        (lambda c, x: c.attribute(x, target=torch.tensor([1.0, 2.0, 3.0])), TypeError,
         r"'target' .*dtype torch.float32"),
        (lambda c, x: c.attribute(x, target=1.5), TypeError, r"'target' .*Got 1.5 instead"),
        (lambda c, x: c.attribute(x, target=[[1, 2], [3], [4, 5]]), ValueError, r"'target'"),
        (lambda c, x: c.attribute(x, target=1, top_k=2), ValueError, r"'top_k' .*exclusive"),
        (lambda c, x: c.attribute(x, top_k=0), ValueError, r"'top_k' .*Got 0 instead"),
        (lambda c, x: c.attribute(x, top_k=21), ValueError, r"'top_k' .*\[1, 20\].*Got 21"),
        (lambda c, x: c.attribute(x, top_k=2, attr_dim_summation=False), ValueError,
         r"'attr_dim_summation'"),
        (lambda c, x: c.attribute(x, interpolate_mode="linearish"), ValueError,
         r"'interpolate_mode' .*'bilinear'.*Got 'linearish'"),
        (lambda c, x: c.attribute(x, relu_attributions="yes"), TypeError,
         r"'relu_attributions' .*bool.*Got 'yes'"),
    ],
)
def test_bad_input(call, exc, pattern, phi2, x64):
    with pytest.raises(exc, match=pattern):
        call(GradCam(phi2), x64)
    assert no_hooks(phi2)


def test_bad_layers_and_models(phi2, x64):
    stray = nn.Conv2d(3, 3, 1)
    with pytest.raises(ValueError, match=r"'layer' parameter of GradCam must be a submodule"):
        GradCam(phi2, stray)
    with pytest.raises(ValueError, match=r"'layer' .*did you mean 'features.8'.*'features.88'"):
        GradCam(phi2, "features.88")
    with pytest.raises(TypeError, match=r"'layer' parameter .*Got int"):
        GradCam(phi2, 3)
    with pytest.raises(TypeError, match=r"'layer' .*must be given .*Got None"):
        GradCam(lambda x: phi2(x))
    with pytest.raises(TypeError, match=r"'forward_func' .*Got int"):
        GradCam(3)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    with pytest.raises(ValueError, match=r"'model' .*4-D.*Got a Sequential with no such module"):
        GradCam(mlp).attribute(torch.rand(2, 3, 8, 8))
    shared = nn.ReLU()
    net = nn.Sequential(nn.Conv2d(3, 4, 3), shared, nn.Conv2d(4, 4, 3), shared,
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"'layer' .*runs once per forward.*ran 2 times"):
        GradCam(net, shared).attribute(torch.rand(1, 3, 8, 8), target=0)
    with pytest.raises(ValueError, match=r"'layer' .*4-D.*shape \(3, 20\)"):
        GradCam(phi2, phi2.classifier).attribute(x64, target=0)
    assert GradCam(phi2, "features.8").layer is phi2.features[8]
    assert no_hooks(phi2) and no_hooks(net)


# ------------------------------------------------- other output forms, properties
def test_tuple_targets_for_dense_outputs_match_captum():
    torch.manual_seed(0)
    seg = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.SiLU(),
                        nn.Conv2d(6, 6, 3, stride=2, padding=1), nn.SiLU(),
                        nn.Conv2d(6, 2, 1))  # (N, 2, 4, 4) scores
    x = torch.randn(2, 3, 8, 8)
    layer = seg[3]
    for target in [(1, 2, 3), [(0, 0, 1), (1, 3, 3)]]:
        ours = GradCam(seg, layer).attribute(x, target=target, relu_attributions=False,
                                             interpolate_mode=None)
        ref = LayerGradCam(seg, layer).attribute(x, target=target).detach()
        torch.testing.assert_close(ours, ref)
    with pytest.raises(ValueError, match=r"'target' .*index tuple.*Got \(2, 0, 0\)"):
        GradCam(seg, layer).attribute(x, target=(2, 0, 0))
    # a one-element tuple on a 2-D output is Captum's form of an int
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 3))
    torch.testing.assert_close(GradCam(net).attribute(x, target=(2,)),
                               GradCam(net).attribute(x, target=2))


@settings(max_examples=12, deadline=None)
@given(
    channels=st.integers(1, 6),
    size=st.integers(3, 9),
    classes=st.integers(1, 5),
    batch=st.integers(1, 3),
    k=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_shortcut_equals_autograd_and_captum_on_random_tiny_cnns(channels, size, classes,
                                                                  batch, k, seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(2, channels, 3, padding=1), nn.SiLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3),
                        nn.Linear(channels, classes)).eval()
    x = torch.randn(batch, 2, size, size)
    targets = torch.randint(0, classes, (batch, k))
    cam = GradCam(net, net[1])
    fast = cam.attribute(x, target=targets, relu_attributions=False, interpolate_mode=None)
    assert cam._head is net[5]
    slow = cam.attribute(x, target=targets, relu_attributions=False, interpolate_mode=None,
                         shortcut=False)
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=1e-5)
    for j in range(k):
        ref = LayerGradCam(net, net[1]).attribute(x, target=targets[:, j]).detach()
        torch.testing.assert_close(fast[:, j:j + 1], ref, atol=1e-6, rtol=1e-5)


def test_layer_input_and_grad_kwargs_match_captum(phi2, x64):
    layer = phi2.features[-1]
    ours = GradCam(phi2, layer).attribute(x64, target=[1, 2, 3], attribute_to_layer_input=True,
                                          relu_attributions=False, interpolate_mode=None)
    ref = LayerGradCam(phi2, layer).attribute(x64, target=[1, 2, 3],
                                              attribute_to_layer_input=True).detach()
    assert ours.shape == ref.shape == (3, 1, 2, 2)
    torch.testing.assert_close(ours, ref, atol=1e-5 * float(ref.abs().max()), rtol=1e-4)
    kw = GradCam(phi2, layer).attribute(x64, target=[1, 2, 3], grad_kwargs={"allow_unused": True},
                                        relu_attributions=False, interpolate_mode=None)
    ref = LayerGradCam(phi2, layer).attribute(x64, target=[1, 2, 3]).detach()
    torch.testing.assert_close(kw, ref, atol=1e-5 * float(ref.abs().max()), rtol=1e-4)
