"""Weight sources: torchvision's cache and download, local checkpoints, all-or-nothing loading."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision
from torchvision.models import EfficientNet_B0_Weights

import captum_effnet as ce
from captum_effnet.models import efficientnet
from captum_effnet.models._weights import LoadedWeights, load_weights

B0_FILE = "efficientnet_b0_rwightman-7f5810bc.pth"  # torchvision's file name for IMAGENET1K_V1


@pytest.fixture(scope="module")
def tiny_state():
    torch.manual_seed(0)
    return efficientnet(-2, num_classes=4).state_dict()


def _equal_states(a, b, skip=()):
    return all(torch.equal(a[k], b[k]) for k in a if not k.startswith(skip or "\0"))


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path


def test_torchvision_weights_come_from_torchvisions_cache(hub_dir):
    torch.manual_seed(0)
    state = torchvision.models.efficientnet_b0().state_dict()
    (hub_dir / "checkpoints").mkdir()
    torch.save(state, hub_dir / "checkpoints" / B0_FILE)
    for weights in ("DEFAULT", "IMAGENET1K_V1", "EfficientNet_B0_Weights.IMAGENET1K_V1",
                    EfficientNet_B0_Weights.IMAGENET1K_V1):
        model = ce.get_model("efficientnet_b0", weights=weights)
        assert _equal_states(model.state_dict(), state)
        assert model.meta["weights"] == "IMAGENET1K_V1"
        assert model.meta["categories"] == EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"]


def test_offline_download_says_where_to_put_the_file(hub_dir):
    with pytest.raises(RuntimeError) as info:
        ce.get_model("efficientnet_b0", weights="DEFAULT")
    message = str(info.value)
    assert str(hub_dir / "checkpoints" / B0_FILE) in message
    assert EfficientNet_B0_Weights.IMAGENET1K_V1.url in message
    assert "offline" in message


def test_unknown_weight_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"'weights' parameter of efficientnet_b1 must be None, "
                                         r"'DEFAULT', 'IMAGENET1K_V1', 'IMAGENET1K_V2', or a path"):
        ce.get_model("efficientnet_b1", weights="IMAGENET1K_V9")
    with pytest.raises(TypeError, match="'weights'"):
        ce.get_model("efficientnet_b0", weights=3)
    with pytest.raises(ValueError, match="'weights' parameter of efficientnet must be None or a"):
        efficientnet(0, weights="DEFAULT")


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module_prefix"])
def test_local_checkpoints_in_common_shapes(tmp_path, tiny_state, wrap):
    obj = {
        "plain": tiny_state,
        "state_dict": {"state_dict": tiny_state, "epoch": torch.tensor(3)},
        "model": {"model": tiny_state},
        "module_prefix": {f"module.{k}": v for k, v in tiny_state.items()},
    }[wrap]
    path = tmp_path / "ckpt.pt"
    torch.save(obj, path)
    model = efficientnet(-2, weights=path)  # num_classes comes from the checkpoint
    assert model.classifier[1].out_features == 4
    assert _equal_states(model.state_dict(), tiny_state)
    assert model.meta["weights"] == str(path)


def test_other_num_classes_loads_all_but_the_classifier(tmp_path, tiny_state):
    path = tmp_path / "ckpt.pt"
    torch.save(tiny_state, path)
    with pytest.warns(UserWarning, match="loaded everything except the classifier"):
        model = efficientnet(-2, weights=path, num_classes=9)
    assert model.classifier[1].out_features == 9
    assert _equal_states(model.state_dict(), tiny_state, skip="classifier")


def test_corrupt_file_is_named(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match=r"Could not read the checkpoint file .*broken\.pth"):
        efficientnet(-2, weights=path)
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match=r"broken\.pth holds list, not a state dict"):
        efficientnet(-2, weights=str(path))


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"no such file.*Got '.*nowhere\.pt' instead"):
        ce.get_model("efficientnet_b0", weights=str(tmp_path / "nowhere.pt"))


def test_mismatched_keys_name_the_file_and_the_keys(tmp_path, tiny_state):
    path = tmp_path / "other.pt"
    torch.save(tiny_state, path)
    with pytest.raises(ValueError) as info:
        ce.get_model("efficientnet_b0", weights=path, num_classes=4)
    message = str(info.value)
    assert str(path) in message and "efficientnet_b0" in message
    assert "shape mismatches" in message and "features.0.0.weight" in message
    assert "No weights were loaded" in message
    state = dict(tiny_state)
    state["extra.weight"] = torch.zeros(1)
    del state["features.1.0.block.0.0.weight"]
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"missing keys \['features.1.0.block.0.0.weight'\]; "
                                         r"unexpected keys \['extra.weight'\]"):
        efficientnet(-2, weights=path)


def test_loading_is_all_or_nothing(tiny_state):
    torch.manual_seed(1)
    model = efficientnet(-2, num_classes=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = dict(tiny_state)
    state["features.8.0.weight"] = state["features.8.0.weight"][:-1]  # one bad shape, last
    with pytest.raises(ValueError, match="features.8.0.weight"):
        load_weights(model, LoadedWeights("bad", "file", state, 4, None, None),
                     model_name="tiny")
    assert _equal_states(model.state_dict(), before)


def test_v2_builds_through_torchvision_and_loads_like_the_others(tmp_path):
    with torch.device("meta"):
        model = ce.get_model("efficientnet_v2_s", num_classes=3, in_channels=1)
    assert model.meta["resolution"] == 384 and model.features[0][0].in_channels == 1
    assert model.classifier[1].out_features == 3
