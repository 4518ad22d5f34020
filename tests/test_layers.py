"""Target-layer resolution: plugin hook first, then the generic rule on the actual input."""

from __future__ import annotations

import logging

import pytest
import torch
import torchvision
from torch import nn

import captum_effnet as ce
from captum_effnet.attr import GradCam, find_target_layer
from captum_effnet.models import BUILTIN_MODELS


def _no_hooks(model: nn.Module) -> bool:
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        and not m._backward_pre_hooks
        for m in model.modules()
    )


class SmallCnn(nn.Module):
    """A third-party style CNN: two conv stages and a linear head."""

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16),
                                  nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.body(self.stem(x))).flatten(1))


class SharedAct(nn.Module):
    """The last spatial module (``act``) runs twice per forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv2(self.act(self.conv1(x))))
        return self.fc(h.mean((2, 3)))


def test_plugin_answers_for_every_efficientnet_kind():
    nets = [
        ce.efficientnet(-2),
        torchvision.models.efficientnet_b0(),
        BUILTIN_MODELS["efficientnet_lite0"][0](),
    ]
    with torch.device("meta"):
        nets.append(torchvision.models.efficientnet_v2_s())  # shapes only, no memory
    for net in nets:
        assert find_target_layer(net) is net.features[-1]  # no input needed


def test_generic_rule_on_resnet18_matches_the_usual_choice():
    torch.manual_seed(0)
    net = torchvision.models.resnet18().eval()
    x = torch.rand(2, 3, 64, 64)
    layer = find_target_layer(net, x)
    assert layer is net.layer4
    # Oracle: pytorch-grad-cam's documented ResNet layer is layer4[-1]; same tensor,
    # and it is exactly what the global average pool consumes.
    seen = {}

    def keep(key, pick):
        def hook(mod, inp, out):
            seen[key] = pick(inp, out)
        return hook

    hooks = [net.layer4[-1].register_forward_hook(keep("blk", lambda i, o: o)),
             net.avgpool.register_forward_hook(keep("pool", lambda i, o: i[0]))]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    assert torch.equal(seen["blk"], seen["pool"])
    assert _no_hooks(net)


def test_generic_rule_on_a_third_party_plugin_model():
    class ThirdParty:
        @ce.hookimpl
        def captum_effnet_register_models(self, registry):
            registry.register("thirdparty_small_cnn", lambda **kw: SmallCnn(**kw))

    name = ce.register_plugin(ThirdParty(), name="thirdparty_layers_test")
    try:
        net = ce.get_model("thirdparty_small_cnn", num_classes=5)
        x = torch.rand(2, 3, 16, 16)
        # The body Sequential (8x8 output) finishes last among the spatial modules.
        assert find_target_layer(net, x) is net.body
        cam = GradCam(net)
        assert cam.layer is None  # no plugin answer: resolved on the first input
        out = cam.attribute(x, target=1)
        assert cam.layer is net.body and out.shape == (2, 1, 16, 16)
    finally:
        ce.unregister_plugin(name)


def test_third_party_target_layer_hook_wins_over_generic_and_builtin():
    class Answers:
        @ce.hookimpl
        def captum_effnet_target_layer(self, model):
            if isinstance(model, SmallCnn):
                return model.stem
            if isinstance(model, torchvision.models.EfficientNet):
                return model.features[-2]
            return None

    name = ce.register_plugin(Answers(), name="thirdparty_target_layer_test")
    try:
        net = SmallCnn()
        assert find_target_layer(net) is net.stem
        assert GradCam(net).layer is net.stem  # resolved at construction
        eff = ce.efficientnet(-2)
        assert find_target_layer(eff) is eff.features[-2]  # newest plugin asked first
    finally:
        ce.unregister_plugin(name)
    assert find_target_layer(eff) is eff.features[-1]


def test_modules_that_run_twice_are_skipped():
    net = SharedAct()
    assert find_target_layer(net, torch.rand(1, 3, 8, 8)) is net.conv2


def test_probe_leaves_modes_stats_and_hooks_alone():
    net = SmallCnn().train()
    net.stem.eval()
    modes = {n: m.training for n, m in net.named_modules()}
    stats = net.body[1].running_mean.clone()
    find_target_layer(net, torch.rand(4, 3, 16, 16) * 5)
    assert {n: m.training for n, m in net.named_modules()} == modes
    assert torch.equal(net.body[1].running_mean, stats)  # the probe ran in eval mode
    assert _no_hooks(net)


def test_chosen_layer_is_logged_once(caplog):
    net = SmallCnn()
    cam = GradCam(net)
    x = torch.rand(2, 3, 16, 16)
    with caplog.at_level(logging.INFO, logger="captum_effnet.attr"):
        cam.attribute(x, target=0)
        cam.attribute(x, target=1)
    records = [r for r in caplog.records if "chosen by" in r.getMessage()]
    assert len(records) == 1
    assert "'body'" in records[0].getMessage() and "generic rule" in records[0].getMessage()


def test_errors_name_parameter_value_and_what_is_accepted():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    with pytest.raises(ValueError, match=r"'model' parameter of find_target_layer.*4-D"):
        find_target_layer(mlp, torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"'inputs' parameter of find_target_layer.*Got None"):
        find_target_layer(SmallCnn())
    with pytest.raises(TypeError, match=r"'model' parameter .*torch.nn.Module. Got function"):
        find_target_layer(lambda x: x)
    with pytest.raises(ValueError, match=r"'inputs' .*4-D .*unsqueeze.*\(3, 16, 16\)"):
        find_target_layer(SmallCnn(), torch.rand(3, 16, 16))
    with pytest.raises(TypeError, match=r"'inputs' .*floating-point.*torch.uint8"):
        find_target_layer(SmallCnn(), torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"'inputs' .*3 channels.*\(1, 1, 16, 16\)"):
        find_target_layer(SmallCnn(), torch.rand(1, 1, 16, 16))
