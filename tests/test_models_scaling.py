"""Compound scaling: the formula, the rounding rules, the table, φ anywhere on the real line."""

from __future__ import annotations

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models import EfficientNet
from torchvision.models._utils import _make_divisible

from captum_effnet.models import CompoundScaling, efficientnet, profile
from captum_effnet.models._profile import estimate_cost
from captum_effnet.models._scaling import VARIANTS, round_channels, round_depth, stage_plan


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_defaults_are_the_papers_coefficients():
    s = CompoundScaling()
    assert (s.alpha, s.beta, s.gamma, s.base_resolution) == (1.2, 1.1, 1.15, 224)
    assert s.cost_base == pytest.approx(1.2 * 1.1**2 * 1.15**2)
    assert round(s.cost_base, 3) == 1.920  # the json's "exact product"


def test_phi_zero_gives_b0_multipliers():
    assert CompoundScaling().multipliers(0) == (1.0, 1.0, 224)
    b0 = VARIANTS["efficientnet_b0"]
    assert (b0.depth, b0.width, b0.resolution) == CompoundScaling().multipliers(0)


@given(st.floats(-6, 6, allow_nan=False))
@settings(max_examples=50, deadline=None)
def test_multipliers_follow_the_closed_form(phi):
    s = CompoundScaling()
    depth, width, res = s.multipliers(phi)
    assert depth == pytest.approx(1.2**phi)
    assert width == pytest.approx(1.1**phi)
    assert res % 8 == 0 and res >= 8
    assert abs(res - max(8, 224 * 1.15**phi)) <= 4 or res == 8


def test_resolution_rounds_to_the_documented_multiple():
    s = CompoundScaling(resolution_multiple=32)
    assert s.multipliers(1).resolution == 256  # 257.6 -> 256
    assert CompoundScaling().multipliers(-30).resolution == 8  # never below one multiple


def test_rounding_rules_are_torchvisions():
    for c in (16, 24, 32, 40, 80, 112, 192, 320, 1280):
        for w in (0.3, 0.8264, 1.0, 1.1, 1.21, 1.4, 2.0, 3.7):
            assert round_channels(c, w) == _make_divisible(c * w, 8)
    assert [round_depth(n, 1.4) for n in (1, 2, 3, 4)] == [2, 3, 5, 6]
    assert round_depth(4, 0.01) == 1


def test_table_is_the_published_one():
    # oracle: the reference implementation's copy of the official TF builders' table
    from efficientnet_lite_pytorch.utils import efficientnet_params

    assert len(VARIANTS) == 13
    for name, v in VARIANTS.items():
        ref = efficientnet_params(name.replace("_", "-"))
        assert (v.width, v.depth, v.resolution, v.dropout) == ref, name


@pytest.mark.parametrize(("phi", "twin"), [(0, "efficientnet_b0"), (1, "efficientnet_b2"),
                                           (2, "efficientnet_b3")])
def test_formula_models_equal_torchvision_architectures(phi, twin):
    # phi=1 has B2's (width 1.1, depth 1.2); phi=2 rounds to B3's channels and layers.
    with torch.device("meta"):
        ours = efficientnet(phi)
        theirs = getattr(torchvision.models, twin)()
    assert _shapes(ours) == _shapes(theirs)


def test_negative_and_fractional_phi_build_and_run():
    torch.manual_seed(0)
    for phi in (-2, -0.5, 0.25):
        model = efficientnet(phi, num_classes=7).eval()
        assert isinstance(model, EfficientNet)
        with torch.no_grad():
            out = model(torch.randn(2, 3, 48, 48))
        assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_phi_minus_two_is_the_small_test_model():
    with torch.device("meta"):
        p = profile(efficientnet(-2))
        b0 = profile("efficientnet_b0")
    assert p.resolution == 168
    assert p.params < 0.7 * b0.params
    assert p.macs < 0.5 * b0.macs


def test_cost_grows_about_two_to_the_phi():
    s = CompoundScaling()
    base = estimate_cost(stage_plan("efficientnet", 1.0, 1.0), 224).macs
    previous = base
    for phi in range(1, 6):
        d, w, r = s.multipliers(phi)
        macs = estimate_cost(stage_plan("efficientnet", w, d), r).macs
        assert macs > previous
        # rounding (ceil on layers, make_divisible on channels) adds a little
        assert 0.9 < (macs / base) / s.cost_base**phi < 1.35, phi
        previous = macs


@given(st.floats(-3, 3.5, allow_nan=False), st.floats(-3, 3.5, allow_nan=False))
@settings(max_examples=25, deadline=None)
def test_cost_never_decreases_with_phi(a, b):
    lo, hi = sorted((a, b))
    s = CompoundScaling()

    def cost(phi):
        d, w, r = s.multipliers(phi)
        return estimate_cost(stage_plan("efficientnet", w, d), r)

    assert cost(lo).macs <= cost(hi).macs
    assert cost(lo).params <= cost(hi).params


@given(st.floats(-3, 1.5, allow_nan=False))
@settings(max_examples=5, deadline=None)
def test_closed_form_cost_equals_flop_counter(phi):
    with torch.device("meta"):
        model = efficientnet(phi, num_classes=13, in_channels=2)
    measured = profile(model)
    m = model.meta
    est = estimate_cost(stage_plan("efficientnet", m["width"], m["depth"]), m["resolution"],
                        num_classes=13, in_channels=2)
    assert (est.params, est.macs) == (measured.params, measured.macs)


def test_meta_describes_the_model():
    with torch.device("meta"):
        model = efficientnet(0.5, alpha=1.3, beta=1.05, gamma=1.1, num_classes=5, dropout=0.1)
    m = model.meta
    assert m["phi"] == 0.5 and m["alpha"] == 1.3 and m["beta"] == 1.05 and m["gamma"] == 1.1
    assert m["depth"] == pytest.approx(1.3**0.5) and m["width"] == pytest.approx(1.05**0.5)
    assert m["resolution"] == CompoundScaling(1.3, 1.05, 1.1).multipliers(0.5).resolution
    assert m["dropout"] == 0.1 == model.classifier[0].p
    assert m["weights"] is None and m["categories"] is None
    assert model.classifier[1].out_features == 5


def test_in_channels_rebuilds_the_stem():
    model = efficientnet(-2, in_channels=1, num_classes=3).eval()
    assert model.features[0][0].in_channels == 1
    with torch.no_grad():
        assert model(torch.randn(1, 1, 40, 40)).shape == (1, 3)


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"alpha": 0}, ValueError, r"'alpha' parameter of CompoundScaling .* range \(0.0, inf\)"),
    ({"beta": -1.1}, ValueError, "'beta'"),
    ({"gamma": float("nan")}, ValueError, "'gamma'"),
    ({"in_channels": 0}, ValueError, r"'in_channels' parameter of efficientnet .*Got 0"),
    ({"num_classes": 0}, ValueError, "'num_classes'"),
    ({"num_classes": 2.5}, TypeError, "'num_classes'"),
    ({"dropout": 1.0}, ValueError, "'dropout'"),
    ({"stochastic_depth_prob": -0.1}, ValueError, "'stochastic_depth_prob'"),
])
def test_bad_arguments_name_parameter_and_value(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        efficientnet(0, **kwargs)


@pytest.mark.parametrize("phi", [float("inf"), float("nan"), "1", True])
def test_bad_phi(phi):
    with pytest.raises((ValueError, TypeError), match="'phi' parameter of efficientnet"):
        efficientnet(phi)


def test_phi_too_large_for_memory_is_refused_before_allocating():
    with pytest.raises(ValueError, match=r"'phi'.*phi=40 gives about .* GiB") as info:
        efficientnet(40)
    assert "Got 40.0 instead" in str(info.value)
    with pytest.raises(ValueError, match="'phi'"):
        efficientnet(1e6)  # overflows the multipliers


def test_memory_guard_uses_the_machines_memory_and_skips_meta(monkeypatch):
    from captum_effnet.models import _efficientnet

    monkeypatch.setattr(_efficientnet, "_total_memory", lambda: 2**20)  # a 1 MiB machine
    with pytest.raises(ValueError, match=r"phi=0 gives about 5.29e\+06 parameters"):
        efficientnet(0)
    with torch.device("meta"):  # nothing is allocated there, so no limit applies
        assert efficientnet(0).meta["phi"] == 0


def test_resolution_multiple_reaches_the_model():
    with torch.device("meta"):
        assert efficientnet(1, base_resolution=24, resolution_multiple=4).meta["resolution"] == 28
        assert efficientnet(1, base_resolution=24).meta["resolution"] == 24  # 27.6 -> 24
