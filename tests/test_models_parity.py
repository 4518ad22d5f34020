"""Named variants against the peers: torchvision (B0..B7, V2), efficientnet_lite_pytorch (Lite)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from efficientnet_lite_pytorch import EfficientNet as ReferenceEfficientNet
from torchvision.models import EfficientNet, get_model_weights

import captum_effnet as ce
from captum_effnet.models import BUILTIN_MODELS, profile
from captum_effnet.models._weights import convert_reference_state_dict, load_weights

B_NAMES = [f"efficientnet_b{i}" for i in range(8)]
LITE_NAMES = [f"efficientnet_lite{i}" for i in range(5)]
V2_NAMES = ["efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"]


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _crop(name: str) -> int:
    return get_model_weights(name).DEFAULT.transforms.keywords["crop_size"]


def test_every_builtin_is_registered_with_its_info():
    assert set(BUILTIN_MODELS) == set(B_NAMES + LITE_NAMES + V2_NAMES)
    for name, (builder, info) in BUILTIN_MODELS.items():
        assert callable(builder) and builder.__name__ == name
        assert isinstance(info["resolution"], int) and isinstance(info["weights"], tuple)
        assert isinstance(info["description"], str) and "\n" not in info["description"]
        assert name in ce.list_models()
    assert BUILTIN_MODELS["efficientnet_b1"][1]["weights"] == (
        "DEFAULT", "IMAGENET1K_V1", "IMAGENET1K_V2")
    assert BUILTIN_MODELS["efficientnet_lite0"][1]["weights"] == ("imagenet",)
    assert BUILTIN_MODELS["efficientnet_lite3"][1]["weights"] == ()


@pytest.mark.parametrize("name", B_NAMES + V2_NAMES)
def test_same_architecture_as_torchvision(name):
    with torch.device("meta"):
        ours = ce.get_model(name)
        theirs = getattr(torchvision.models, name)()
    assert type(ours) is EfficientNet
    assert _shapes(ours) == _shapes(theirs)  # identical keys, order and shapes
    n = sum(p.numel() for p in ours.parameters())
    assert n == get_model_weights(name).DEFAULT.meta["num_params"]
    # the same batch-norm settings, so torchvision checkpoints give torchvision's outputs
    bn_ours = [(m.eps, m.momentum) for m in ours.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    bn_theirs = [(m.eps, m.momentum) for m in theirs.modules()
                 if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn_ours == bn_theirs
    assert ours.classifier[0].p == theirs.classifier[0].p


@pytest.mark.parametrize("name", B_NAMES)
def test_macs_equal_torchvision_ops(name):
    p = profile(name, resolution=_crop(name))
    assert round(p.gmacs, 3) == get_model_weights(name).DEFAULT.meta["_ops"]
    assert p.params == get_model_weights(name).DEFAULT.meta["num_params"]


def test_macs_equal_torchvision_ops_v2_s():
    p = profile("efficientnet_v2_s", resolution=384)
    assert round(p.gmacs, 3) == get_model_weights("efficientnet_v2_s").DEFAULT.meta["_ops"]


def test_a_torchvision_state_dict_loads_and_gives_torchvisions_outputs(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.efficientnet_b0().eval()
    with torch.no_grad():  # make batch norm non-trivial
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "b0.pth"
    torch.save(reference.state_dict(), path)
    ours = ce.get_model("efficientnet_b0", weights=str(path)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)
    assert ours.meta["weights"] == str(path) and ours.meta["categories"] is None


@pytest.mark.parametrize("name", LITE_NAMES)
def test_lite_parameters_equal_the_reference_implementation(name):
    with torch.device("meta"):
        ours = ce.get_model(name)
        ref = ReferenceEfficientNet.from_name(name.replace("_", "-"))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    assert type(ours) is EfficientNet
    assert not any("fc1" in k for k in ours.state_dict())  # no squeeze-excitation
    acts = {type(m) for m in ours.modules() if isinstance(m, (torch.nn.SiLU, torch.nn.ReLU6))}
    assert acts == {torch.nn.ReLU6}


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite4"])
def test_lite_conversion_reproduces_reference_logits(name):
    # random reference weights with non-trivial batch-norm statistics, converted to our layout;
    # an odd input size exercises TensorFlow's asymmetric "SAME" padding
    torch.manual_seed(1)
    ref = ReferenceEfficientNet.from_name(name.replace("_", "-"), image_size=None).eval()
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    ours = ce.get_model(name).eval()
    from captum_effnet.models._weights import LoadedWeights

    load_weights(ours, LoadedWeights("reference", "file", ref.state_dict(), 1000, None, None),
                 model_name=name)
    x = torch.randn(2, 3, 67, 67)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-4)


def test_reference_b0_layout_with_squeeze_excitation_converts_key_for_key():
    # lukemelas-style B0 checkpoints (with SE) map onto torchvision's keys and shapes
    with torch.device("meta"):
        ref = ReferenceEfficientNet.from_name("efficientnet-b0")
        ours = ce.get_model("efficientnet_b0")
    converted = convert_reference_state_dict(ref.state_dict(), ours)
    assert {k: tuple(v.shape) for k, v in converted.items()} == _shapes(ours)
