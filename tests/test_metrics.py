"""captum_effnet.metrics on planted models with closed-form answers."""

from __future__ import annotations

import copy
from typing import ClassVar

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

import captum_effnet.metrics as cm
from captum_effnet.attr import GradCam
from captum_effnet.metrics import (
    deletion_insertion,
    make_synthetic_objects,
    pointing_game,
    randomization_test,
    randomization_units,
)
from captum_effnet.metrics._randomization import spearman

# --------------------------------------------------------------------------- helpers


class RegionMean(nn.Module):
    """Logit 0 = mean of channel 0 over the top-left ``r x r`` region, logit 1 = 0."""

    def __init__(self, r: int = 4, scale: float = 1.0) -> None:
        super().__init__()
        self.r, self.scale = r, scale

    def forward(self, x):
        m = x[:, 0, : self.r, : self.r].mean((1, 2)) * self.scale
        return torch.stack([m, torch.zeros_like(m)], 1)


def region_map(n: int = 1, size: int = 8, r: int = 4) -> torch.Tensor:
    a = torch.zeros(n, 1, size, size)
    a[:, :, :r, :r] = 1.0
    return a


# --------------------------------------------------------------------- deletion


def test_public_names():
    assert set(cm.__all__) == {n for n in vars(cm) if not n.startswith("_")
                               and n != "annotations" and not isinstance(getattr(cm, n), type(cm))}


def test_perfect_map_reaches_the_closed_form_optimum():
    # Region of 16 of 64 pixels (rho = 1/4), 8 steps of 8 pixels: the perfect map's
    # deletion curve is 1, 1/2, 0, ..., 0 -> AUC rho / 2; insertion 1 - rho / 2.
    x = torch.ones(1, 1, 8, 8)
    r = deletion_insertion(RegionMean(), x, region_map(), 0, steps=8, softmax=False)
    assert r.deletion_curve[0].tolist() == [1.0, 0.5] + [0.0] * 7
    assert r.insertion_curve[0].tolist() == [0.0, 0.5] + [1.0] * 7
    assert r.deletion.item() == pytest.approx(0.125)
    assert r.insertion.item() == pytest.approx(0.875)
    assert r.fractions.tolist() == [k / 8 for k in range(9)]


def test_no_map_beats_the_perfect_one_and_random_maps_lose():
    x = torch.ones(20, 1, 8, 8)
    rand = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    r = deletion_insertion(RegionMean(), x, rand, 0, steps=8, softmax=False)
    assert (r.deletion >= 0.125 - 1e-6).all() and (r.insertion <= 0.875 + 1e-6).all()
    assert r.deletion.mean() > 0.3 and r.insertion.mean() < 0.7
    inverted = deletion_insertion(RegionMean(), x[:1], -region_map(), 0, steps=8, softmax=False)
    assert inverted.deletion.item() == pytest.approx(1 - 0.125)  # worst possible
    assert inverted.insertion.item() == pytest.approx(0.125)


def test_constant_map_deletes_rows_from_the_top():
    # Ties are broken row-major: rows 0..3 each hold 4 region pixels, a row per step.
    x = torch.ones(1, 1, 8, 8)
    flat = deletion_insertion(RegionMean(), x, torch.zeros(1, 8, 8), 0, steps=8, softmax=False)
    assert flat.deletion_curve[0].tolist() == [1.0, 0.75, 0.5, 0.25] + [0.0] * 5
    assert flat.deletion.item() == pytest.approx(0.25)
    ramp = -torch.arange(64.0).view(1, 8, 8)  # the same order, made explicit
    same = deletion_insertion(RegionMean(), x, ramp, 0, steps=8, softmax=False)
    assert torch.equal(same.deletion_curve, flat.deletion_curve)


def test_probabilities_by_default():
    x = torch.ones(1, 1, 8, 8)
    r = deletion_insertion(RegionMean(scale=4.0), x, region_map(), 0, steps=8)
    p = torch.sigmoid(torch.tensor([4.0, 2.0, 0.0]))
    assert torch.allclose(r.deletion_curve[0, :3], p)
    assert r.insertion_curve[0, 0].item() == pytest.approx(0.5)  # baseline: logits (0, 0)


def test_baseline_tensor_and_predicted_target():
    x = torch.ones(2, 1, 8, 8)
    r = deletion_insertion(RegionMean(), x, region_map(2), steps=4, softmax=False, baseline=x)
    assert torch.equal(r.target, torch.zeros(2, dtype=torch.long))  # argmax of (1, 0)
    assert torch.allclose(r.deletion_curve, torch.ones(2, 5))     # nothing changes
    half = deletion_insertion(RegionMean(), x, region_map(2), 0, steps=8, softmax=False,
                              baseline=0.5)
    assert half.deletion_curve[0, -1].item() == pytest.approx(0.5)


def _naive(f, x, a, target, steps, base):
    """RISE's loop, one image at a time: the reference for the batched version."""
    n, _, h, w = x.shape
    out = torch.zeros(2, n, steps + 1)
    for i in range(n):
        order = torch.sort(a[i].sum(0).flatten(), descending=True, stable=True).indices
        for k in range(steps + 1):
            chosen = torch.zeros(h * w, dtype=torch.bool)
            chosen[order[: round(k * h * w / steps)]] = True
            chosen = chosen.view(1, 1, h, w)
            dele = torch.where(chosen, base, x[i:i + 1])
            ins = torch.where(chosen, x[i:i + 1], base)
            with torch.no_grad():
                out[0, i, k] = f(dele).softmax(1)[0, target[i]]
                out[1, i, k] = f(ins).softmax(1)[0, target[i]]
    return out


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_batched_equals_the_naive_loop(batch_size):
    torch.manual_seed(0)
    f = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                      nn.Flatten(), nn.Linear(16, 5)).eval()
    x = torch.randn(3, 3, 6, 5)
    a = torch.randn(3, 3, 6, 5)
    target = [0, 3, 4]
    r = deletion_insertion(f, x, a, target, steps=7, batch_size=batch_size, baseline=-0.5)
    ref = _naive(f, x, a, target, 7, torch.tensor(-0.5))
    assert torch.allclose(r.deletion_curve, ref[0], atol=1e-6)
    assert torch.allclose(r.insertion_curve, ref[1], atol=1e-6)
    fr = torch.tensor([round(k * 30 / 7) / 30 for k in range(8)])
    assert torch.allclose(r.deletion, torch.trapezoid(ref[0], fr, dim=1), atol=1e-6)


_X = torch.ones(2, 1, 4, 4)


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"forward_func": 3}, TypeError, "'forward_func' parameter of deletion_insertion"),
    ({"inputs": np.ones((2, 1, 4, 4))}, TypeError, "'inputs' parameter"),
    ({"inputs": torch.ones(1, 4, 4)}, ValueError, "'inputs' parameter"),
    ({"inputs": torch.ones(2, 1, 4, 4, dtype=torch.long)}, TypeError, "floating"),
    ({"inputs": torch.full((2, 1, 4, 4), float("nan"))}, ValueError, "finite"),
    ({"attributions": torch.ones(2, 1, 2, 2)}, ValueError, "upsample"),
    ({"attributions": torch.full((2, 4, 4), float("nan"))}, ValueError, "finite"),
    ({"attributions": [1.0]}, TypeError, "'attributions' parameter"),
    ({"steps": 0}, ValueError, "'steps' parameter .* range \\[1, inf\\)"),
    ({"steps": 2.0}, TypeError, "'steps' parameter"),
    ({"batch_size": 0}, ValueError, "'batch_size' parameter"),
    ({"softmax": 1}, TypeError, "'softmax' parameter"),
    ({"baseline": "blur"}, TypeError, "'baseline' parameter"),
    ({"baseline": torch.ones(3, 1, 4, 4)}, ValueError, "'baseline' parameter"),
    ({"baseline": float("inf")}, ValueError, "'baseline' parameter"),
    ({"target": [0]}, ValueError, "'target' parameter"),
    ({"target": 2}, ValueError, "class indices in \\[0, 2\\)"),
    ({"target": 0.5}, TypeError, "'target' parameter"),
    ({"target": torch.tensor([0, -1])}, ValueError, "class indices in \\[0, 2\\)"),
    ({"forward_func": lambda x: x.sum()}, TypeError, "scores of shape"),
])
def test_deletion_insertion_errors(kwargs, exc, match):
    call = {"forward_func": RegionMean(2), "inputs": _X, "attributions": torch.ones(2, 4, 4),
            "target": 0, **kwargs}
    with pytest.raises(exc, match=match):
        deletion_insertion(call.pop("forward_func"), call.pop("inputs"),
                           call.pop("attributions"), call.pop("target"), **call)


# ----------------------------------------------------------------------- pointing


def test_pointing_masks_and_boxes_agree():
    ds = make_synthetic_objects(12, image_size=32, grid=2, seed=3)
    maps = ds.masks.float() + 0.01 * torch.rand(12, 1, 32, 32)
    assert pointing_game(maps, ds.masks).accuracy == 1.0
    assert pointing_game(maps, ds.boxes).accuracy == 1.0
    away = (~ds.masks).float()  # maxima everywhere except the object
    assert pointing_game(away, ds.masks).accuracy == 0.0


def test_pointing_tolerance_is_a_euclidean_radius():
    maps = torch.zeros(1, 1, 6, 6)
    maps[0, 0, 3, 3] = 1.0
    box = torch.tensor([[0, 0, 2, 2]])  # pixels (0..1, 0..1); (3, 3) is sqrt(8) away
    assert not pointing_game(maps, box, tolerance=2.8).hits.item()
    assert pointing_game(maps, box, tolerance=2.9).hits.item()


def test_pointing_ties_and_constant_maps():
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[:, 0, 0] = True
    maps = torch.zeros(2, 4, 4)
    maps[0, 0, 0] = maps[0, 3, 3] = 1.0  # two maxima, one off the object: a miss
    res = pointing_game(maps, mask)
    assert res.hits.tolist() == [False, False]
    assert res.constant.tolist() == [False, True]
    assert pointing_game(torch.zeros(1, 4, 4), torch.ones(1, 4, 4, dtype=torch.bool)).hits.item()


def test_pointing_sums_channels():
    maps = torch.zeros(1, 2, 3, 3)
    maps[0, 0, 0, 0] = 1.0
    maps[0, 1, 2, 2] = 0.6
    maps[0, 0, 2, 2] = 0.6  # summed: 1.2 at (2, 2)
    assert pointing_game(maps, torch.tensor([[2, 2, 3, 3]])).hits.item()


@pytest.mark.parametrize(("args", "kwargs", "exc", "match"), [
    ((np.ones((1, 4, 4)), torch.ones(1, 4, 4, dtype=torch.bool)), {}, TypeError, "attributions"),
    ((torch.ones(4, 4), torch.ones(1, 4, 4, dtype=torch.bool)), {}, ValueError, "attributions"),
    ((torch.full((1, 4, 4), float("nan")), torch.ones(1, 4, 4, dtype=torch.bool)), {},
     ValueError, "finite"),
    ((torch.ones(1, 4, 4), torch.ones(1, 4, 4)), {}, TypeError, "bool"),
    ((torch.ones(1, 4, 4), torch.ones(1, 3, 4, dtype=torch.bool)), {}, ValueError,
     "masks_or_boxes"),
    ((torch.ones(1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.bool)), {}, ValueError, "empty"),
    ((torch.ones(1, 4, 4), torch.tensor([[2, 2, 1, 3]])), {}, ValueError, "x_min < x_max"),
    ((torch.ones(1, 4, 4), [[0, 0, 1, 1]]), {}, TypeError, "masks_or_boxes"),
    ((torch.ones(1, 4, 4), torch.tensor([[0, 0, 1, 1]])), {"tolerance": -1}, ValueError,
     "'tolerance' parameter of pointing_game"),
])
def test_pointing_errors(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        pointing_game(*args, **kwargs)


# ------------------------------------------------------------------ randomization


class Gate(nn.Module):
    """A scalar weight whose re-initialisation is known: it becomes ``reset_to``."""

    def __init__(self, reset_to: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))
        self.reset_to = reset_to

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.w.fill_(self.reset_to)

    def forward(self, x):
        return x * self.w


class Recorder:
    """An attribution that records the gates' weights and returns ``relu(w_last * x)``."""

    seen: ClassVar[list[list[float]]] = []

    def __init__(self, model):
        self.model = model

    def attribute(self, inputs, target=None):
        Recorder.seen.append([m.w.item() for m in self.model])
        return torch.relu(self.model(inputs))


def test_cascading_and_independent_randomise_what_they_say():
    net = nn.Sequential(Gate(2.0), Gate(3.0), Gate(-1.0))
    x = torch.rand(2, 1, 3, 3) + 0.1
    assert randomization_units(net) == ["2", "1", "0"]
    Recorder.seen = []
    res = randomization_test(Recorder, net, x, 0)
    assert Recorder.seen == [[1, 1, 1], [1, 1, -1], [1, 3, -1], [2, 3, -1]]
    # The last gate is -1: every randomised map is relu(negative) = 0 -> constant.
    assert res.constant.all() and torch.equal(res.correlation, torch.zeros(3, 2))
    assert not res.trained_constant.any()
    Recorder.seen = []
    res = randomization_test(Recorder, net, x, 0, layers="independent", units=["0", "1"])
    assert Recorder.seen == [[1, 1, 1], [2, 1, 1], [1, 3, 1]]
    assert res.layers == ["0", "1"] and res.mode == "independent"
    assert torch.allclose(res.correlation, torch.ones(2, 2))  # positive rescaling keeps ranks
    assert not res.constant.any()


class InputsAsMap:
    """An explanation that ignores the model (the failure the test exists to catch)."""

    def __init__(self, model):
        self.model = model

    def attribute(self, inputs, target=None):
        return inputs.sum(1, keepdim=True)


def _small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


def test_a_model_independent_map_stays_correlated():
    x = torch.rand(3, 3, 8, 8)
    res = randomization_test(InputsAsMap, _small_net(), x, 0)
    assert res.layers == ["8", "4", "3", "1", "0"]  # batch-norm layers count
    assert torch.equal(res.correlation, torch.ones(5, 3))


def test_the_users_model_is_left_exactly_as_it_was():
    net = _small_net().train()
    net[1].eval()
    net(torch.rand(4, 3, 8, 8)).sum().backward()  # .grad set, batch-norm stats moved
    calls = []
    handle = net.register_forward_hook(lambda *a: calls.append(1))
    state = copy.deepcopy(net.state_dict())
    grads = [p.grad.clone() for p in net.parameters()]
    modes = [m.training for m in net.modules()]
    x = torch.rand(2, 3, 8, 8)
    rng = torch.get_rng_state()
    res = randomization_test(GradCam, net, x, 1,
                             init_kwargs={"layer": net[3]}, layers="independent")
    assert res.correlation.shape == (5, 2)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, net.parameters(), strict=True))
    assert [m.training for m in net.modules()] == modes
    assert torch.equal(torch.get_rng_state(), rng)
    assert list(net._forward_hooks) == [handle.id]
    handle.remove()


def test_layer_of_the_users_model_is_mapped_to_the_copy():
    net = _small_net().eval()
    x = torch.rand(2, 3, 8, 8)
    a = randomization_test(GradCam, net, x, 1, init_kwargs={"layer": net[3]})
    b = randomization_test(GradCam, net, x, 1, init_kwargs={"layer": "3"})
    assert torch.equal(a.correlation, b.correlation)
    again = randomization_test(GradCam, net, x, 1, init_kwargs={"layer": "3"})
    assert torch.equal(a.correlation, again.correlation)  # seeded


def test_randomization_units_needs_a_module():
    with pytest.raises(TypeError, match="'model' parameter of randomization_units"):
        randomization_units("efficientnet_b0")
    with pytest.raises(ValueError, match="'model' parameter of randomization_test"):
        randomization_test(InputsAsMap, nn.ReLU(), torch.rand(2, 3), 0)


def test_spearman_matches_scipy_with_ties():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (4, 50), generator=g).float()
    b = torch.randn(4, 50, generator=g).round()
    rho, const = spearman(a, b)
    ref = [spearmanr(a[i].numpy(), b[i].numpy()).statistic for i in range(4)]
    assert np.allclose(rho.numpy(), ref, atol=1e-6)
    assert not const.any()
    rho, const = spearman(a, torch.zeros(4, 50))
    assert const.all() and torch.equal(rho, torch.zeros(4))


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"attribution_cls": 3}, TypeError, "'attribution_cls' parameter of randomization_test"),
    ({"model": lambda x: x}, TypeError, "'model' parameter"),
    ({"inputs": [1.0]}, TypeError, "'inputs' parameter"),
    ({"inputs": torch.full((2, 3, 8, 8), float("inf"))}, ValueError, "finite"),
    ({"layers": "cascade"}, ValueError, "did you mean 'cascading'"),
    ({"units": ["9"]}, ValueError, "'units' parameter"),
    ({"units": "0"}, TypeError, "'units' parameter"),
    ({"units": []}, ValueError, "'units' parameter"),
    ({"seed": -1}, ValueError, "'seed' parameter"),
    ({"init_kwargs": ["layer"]}, TypeError, "'init_kwargs' parameter"),
])
def test_randomization_errors(kwargs, exc, match):
    call = {"attribution_cls": InputsAsMap, "model": _small_net(),
            "inputs": torch.rand(2, 3, 8, 8), **kwargs}
    with pytest.raises(exc, match=match):
        randomization_test(call.pop("attribution_cls"), call.pop("model"), call.pop("inputs"),
                           0, **call)


# ---------------------------------------------------------------------- synthetic


def test_synthetic_ground_truth_is_consistent():
    ds = make_synthetic_objects(40, n_classes=4, image_size=48, grid=3, seed=5)
    assert len(ds) == 40 and ds.class_names == ("square", "disk", "cross", "ring")
    assert torch.bincount(ds.labels).tolist() == [10, 10, 10, 10]
    for i in range(40):
        yy, xx = torch.nonzero(ds.masks[i, 0], as_tuple=True)
        assert ds.boxes[i].tolist() == [xx.min(), yy.min(), xx.max() + 1, yy.max() + 1]
        row, col = divmod(int(ds.cells[i]), 3)
        assert yy.min() >= row * 16 and yy.max() < (row + 1) * 16
        assert xx.min() >= col * 16 and xx.max() < (col + 1) * 16
        # only the object's pixels differ from the background
        diff = (ds.images[i] != ds.backgrounds[i]).any(0)
        assert torch.equal(diff, ds.masks[i, 0])
    assert torch.equal(make_synthetic_objects(3, seed=1).images,
                       make_synthetic_objects(3, seed=1).images)


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"n_samples": 0}, ValueError, "'n_samples' parameter of make_synthetic_objects"),
    ({"n_classes": 5}, ValueError, "'n_classes' parameter"),
    ({"image_size": 66}, ValueError, "multiple of grid=4"),
    ({"jitter": 10}, ValueError, "'jitter' parameter"),
    ({"contrast": 0.0}, ValueError, "'contrast' parameter"),
    ({"seed": "a"}, TypeError, "'seed' parameter"),
])
def test_synthetic_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make_synthetic_objects(**{"n_samples": 2, **kwargs})
