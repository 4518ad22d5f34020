"""search_coefficients() and phi_for_budget() with cheap synthetic objectives."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from captum_effnet.models import (
    CompoundScaling,
    efficientnet,
    phi_for_budget,
    profile,
    search_coefficients,
)
from captum_effnet.models._search import DEFAULT_GRID


class Recorder:
    """A synthetic objective: peaks at a planted (alpha, beta, gamma); records its calls."""

    def __init__(self, planted):
        self.planted = np.asarray(planted)
        self.calls = []

    def __call__(self, model, resolution):
        m = model.meta
        self.calls.append((m["alpha"], m["beta"], m["gamma"], resolution,
                           model.classifier[1].out_features))
        return -float(np.sum((np.array([m["alpha"], m["beta"], m["gamma"]]) - self.planted) ** 2))


@pytest.fixture(autouse=True)
def _meta_device():
    # candidates are only inspected, never run: build them on the meta device
    with torch.device("meta"):
        yield


def test_grid_search_keeps_exactly_the_points_near_the_constraint_and_finds_the_planted_one():
    grid = {"alpha": [1.0, 1.1, 1.2, 1.3], "beta": [1.0, 1.1, 1.2], "gamma": [1.0, 1.15, 1.3]}
    expected = [t for t in itertools.product(*grid.values())
                if abs(t[0] * t[1] ** 2 * t[2] ** 2 / 2 - 1) <= 0.1]
    evaluate = Recorder((1.2, 1.1, 1.15))
    result = search_coefficients(evaluate, grid=grid, tolerance=0.1, num_classes=10)
    r = result.results
    assert list(zip(r["param_alpha"], r["param_beta"], r["param_gamma"], strict=True)) == expected
    assert len(evaluate.calls) == len(expected)
    assert {c[4] for c in evaluate.calls} == {10}  # model_kwargs reach the builder
    assert result.best_params == {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}
    assert result.best_score == 0.0 and r["rank_score"][result.best_index] == 1
    assert sorted(r["rank_score"]) == list(range(1, len(expected) + 1))
    np.testing.assert_allclose(r["cost_factor"], [a * b * b * g * g for a, b, g in expected])
    # the resolution handed to evaluate is the scaled one, and the costs are profile()'s
    i = result.best_index
    assert evaluate.calls[i][3] == r["resolution"][i] == 256
    p = profile(efficientnet(1, alpha=1.2, beta=1.1, gamma=1.15, num_classes=10))
    assert (r["n_params"][i], r["macs"][i]) == (p.params, p.macs)


def test_default_grid_and_tolerance(monkeypatch):
    from captum_effnet.models import _search

    built = []

    def fake_efficientnet(phi, *, alpha, beta, gamma, base_resolution, **kwargs):
        built.append((alpha, beta, gamma))  # a stand-in with the metadata the search reads
        depth, width, resolution = CompoundScaling(alpha, beta, gamma).multipliers(phi)
        return SimpleNamespace(meta={"depth": depth, "width": width, "resolution": resolution,
                                     "num_classes": 2, "in_channels": 3})

    monkeypatch.setattr(_search, "efficientnet", fake_efficientnet)
    result = search_coefficients(lambda model, res: 0.0, num_classes=2)
    values = [1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.35, 1.4]
    assert {"alpha": tuple(values), "beta": tuple(values),
                            "gamma": tuple(values)} == DEFAULT_GRID
    kept = [t for t in itertools.product(values, values, values)
            if abs(t[0] * t[1] ** 2 * t[2] ** 2 / 2 - 1) <= 0.05]
    assert built == kept and len(kept) > 10
    assert (1.2, 1.1, 1.15) in kept  # the paper's choice, 4 % below 2
    assert len(result.results["score"]) == len(kept)


def test_ties_share_the_lowest_rank_and_nan_ranks_last():
    scores = iter([1.0, float("nan"), 1.0, 0.5])
    result = search_coefficients(lambda model, res: next(scores),
                                 grid=[(2, 1, 1), (1, 2**0.5, 1), (1, 1, 2**0.5), (1.2, 1.1, 1.15)],
                                 num_classes=2)
    assert result.results["rank_score"].tolist() == [1, 4, 1, 3]
    assert result.best_index == 0


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"evaluate": "accuracy"}, TypeError, "'evaluate'"),
    ({"grid": {"alpha": [1.2]}}, ValueError, "'grid'.*exactly the keys"),
    ({"grid": [(1.2, 1.1)]}, ValueError, "'grid'.*triples"),
    ({"grid": [(1.2, -1.1, 1.15)]}, ValueError, r"grid\['beta'\]"),
    ({"grid": [(1.0, 1.0, 1.0)]}, ValueError, "cost factors range from 1 to 1"),
    ({"target_ratio": 0}, ValueError, "'target_ratio'"),
    ({"tolerance": -0.1}, ValueError, "'tolerance'"),
])
def test_search_bad_inputs(kwargs, exc, match):
    kwargs = {"evaluate": Recorder((1, 1, 1)), **kwargs}
    with pytest.raises(exc, match=match):
        search_coefficients(kwargs.pop("evaluate"), **kwargs)


def test_search_rejects_a_non_numeric_score():
    with pytest.raises(TypeError, match=r"must return a real number. Got 'good' from "
                                        r"<lambda>\(model, 224\)"):
        search_coefficients(lambda m, r: "good", grid=[(2, 1, 1)])


@pytest.mark.parametrize("budget", [{"max_macs": 1e9}, {"max_macs": 3e8},
                                    {"max_params": 8e6}, {"max_macs": 5e9, "max_params": 6e6}])
def test_phi_for_budget_is_the_largest_fitting_phi(budget):
    phi = phi_for_budget(**budget)
    inside = profile(efficientnet(phi))
    outside = profile(efficientnet(round(phi + 0.01, 2)))

    def fits(p):
        return p.macs <= budget.get("max_macs", np.inf) and p.params <= budget.get(
            "max_params", np.inf)

    assert fits(inside) and not fits(outside)


def test_phi_for_budget_with_other_coefficients_and_step():
    phi = phi_for_budget(max_macs=2e8, alpha=1.0, beta=1.0, gamma=1.5, step=0.5,
                         base_resolution=128, num_classes=10)
    assert phi % 0.5 == 0
    kw = {"alpha": 1.0, "beta": 1.0, "gamma": 1.5, "base_resolution": 128, "num_classes": 10}
    inside, outside = profile(efficientnet(phi, **kw)), profile(efficientnet(phi + 0.5, **kw))
    assert inside.macs <= 2e8 < outside.macs


def test_phi_for_budget_bad_inputs():
    with pytest.raises(ValueError, match="'max_macs'.*max_params"):
        phi_for_budget()
    with pytest.raises(ValueError, match="'max_params'"):
        phi_for_budget(max_params=-5)
    with pytest.raises(ValueError, match=r"'alpha' parameter of phi_for_budget .*\[1.0, inf\)"):
        phi_for_budget(max_macs=1e9, alpha=0.9)
    with pytest.raises(ValueError, match=r"No phi in \[-10, 100\] fits the budget max_macs=1000"):
        phi_for_budget(max_macs=1e3)
    assert phi_for_budget(max_macs=1e30, phi_max=5) == 5
