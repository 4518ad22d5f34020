"""profile(), scale_table() and get_transforms()."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torchvision.models import get_model_weights

from captum_effnet.models import efficientnet, get_transforms, profile, scale_table


def test_profile_of_a_hand_made_cnn_is_its_closed_form():
    # conv 3->4 k3 on 10x10 (pad 1): 10*10*4*3*9 MACs; linear 4->2: 8 MACs
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    p = profile(model, resolution=10)
    assert p.params == 4 * 3 * 9 + 4 + 4 * 2 + 2
    assert p.macs == 10 * 10 * 4 * 3 * 9 + 4 * 2
    assert p.gmacs == p.macs / 1e9
    # leaf outputs, float32: conv and relu 4x10x10, pool 4, flatten 4, linear 2
    assert p.activation_bytes == 4 * (400 + 400 + 4 + 4 + 2)
    assert p.name is None and p.resolution == 10
    assert model.training  # mode restored


def test_profile_is_a_frozen_record_and_does_not_touch_the_model():
    model = efficientnet(-2, num_classes=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    p = profile(model)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.params = 0
    assert p.resolution == 168 and p.name == "efficientnet(phi=-2)"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert profile(model, resolution=84).macs < p.macs


def test_profile_by_name_equals_profile_of_the_built_model():
    by_name = profile("efficientnet_lite0")
    with torch.device("meta"):
        from captum_effnet import get_model

        built = profile(get_model("efficientnet_lite0"))
    assert by_name == built


def test_profile_bad_inputs():
    with pytest.raises(ValueError, match=r"'model_or_name' parameter of profile must be one of "
                                         r"'efficientnet_b0'.*did you mean"):
        profile("efficientnet_bo")
    with pytest.raises(TypeError, match="'model_or_name'"):
        profile(42)
    with pytest.raises(ValueError, match="'resolution' parameter of profile must be given"):
        profile(nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="'resolution'"):
        profile("efficientnet_b0", resolution=0)


def test_scale_table_rows():
    rows = scale_table([-1, 0, 2])
    assert [r["phi"] for r in rows] == [-1.0, 0.0, 2.0]
    zero = rows[1]
    assert (zero["resolution"], zero["params"], zero["gmacs"], zero["ratio"]) == (
        224, 5288548, 0.386, 1.0)
    assert rows[0]["ratio"] < 1 < rows[2]["ratio"]
    assert rows[2]["predicted"] == round(1.92**2, 2)
    assert 3.0 < rows[2]["ratio"] < 5.5  # about 2**2 (rounding adds a little)
    with pytest.raises(ValueError, match="'phis'"):
        scale_table([])


@pytest.mark.parametrize(("name", "weights"), [
    ("efficientnet_b0", None), ("efficientnet_b1", "IMAGENET1K_V1"),
    ("efficientnet_b1", "IMAGENET1K_V2"), ("efficientnet_v2_l", "DEFAULT"),
])
def test_torchvision_transforms_are_torchvisions(name, weights):
    enum = get_model_weights(name)
    expected = (enum.DEFAULT if weights is None else enum[weights]).transforms()
    got = get_transforms(name, weights=weights)
    assert repr(got) == repr(expected)


def test_transforms_of_a_model_follow_its_meta():
    model = efficientnet(-2, num_classes=3)
    t = get_transforms(model)
    assert t.crop_size == [168]
    assert t(torch.zeros(3, 50, 80, dtype=torch.uint8)).shape == (3, 168, 168)
    lite = get_transforms("efficientnet_lite3")
    assert lite.crop_size == [280] and lite.resize_size == [312]


def test_transforms_bad_inputs():
    with pytest.raises(ValueError, match=r"'name_or_model'.*'efficientnet_b0'"):
        get_transforms("resnet50")
    with pytest.raises(TypeError, match="'name_or_model'.*model built by captum_effnet"):
        get_transforms(nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"'weights' parameter of get_transforms must be None, "
                                         r"'DEFAULT', 'IMAGENET1K_V1'"):
        get_transforms("efficientnet_b0", weights="imagenet")
