"""The two searches the paper leaves to the user.

:func:`search_coefficients` is the paper's step 1: fix φ = 1, try every
(α, β, γ) on a grid whose cost factor ``α · β² · γ²`` is close to the target
(2 in the paper), build each model and score it with the user's
``evaluate(model, resolution)``; the result is a table of every candidate,
like scikit-learn's ``cv_results_``.

:func:`phi_for_budget` is the inverse of scaling: the largest φ whose model
fits a MAC and/or parameter budget, found by bisection on the closed-form
cost (exactly what :func:`~captum_effnet.models.profile` measures).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from sklearn.utils import Bunch
from torch import nn

from .._validation import check_int, check_real, param_error
from ._efficientnet import efficientnet
from ._profile import Cost, estimate_cost
from ._scaling import CompoundScaling, stage_plan

__all__ = ["DEFAULT_GRID", "phi_for_budget", "search_coefficients"]

#: The default grid: α, β, γ each in 1.00, 1.05, ..., 1.40.
DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    k: tuple(round(1.0 + 0.05 * i, 2) for i in range(9)) for k in ("alpha", "beta", "gamma")
}


def _candidates(grid: Any, func: str) -> list[tuple[float, float, float]]:
    if isinstance(grid, Mapping):
        keys = {"alpha", "beta", "gamma"}
        if set(grid) != keys:
            raise param_error("grid", func, "a dict with exactly the keys 'alpha', 'beta', "
                              "'gamma' (each a sequence of positive numbers) or a sequence of "
                              "(alpha, beta, gamma) triples", grid)
        axes = [list(grid[k]) for k in ("alpha", "beta", "gamma")]
        triples = list(itertools.product(*axes))
    else:
        try:
            triples = [tuple(t) for t in grid]
        except TypeError:
            raise param_error("grid", func, "a dict of 'alpha', 'beta', 'gamma' sequences or "
                              "a sequence of (alpha, beta, gamma) triples", grid,
                              exc=TypeError) from None
        if any(len(t) != 3 for t in triples):
            raise param_error("grid", func, "a sequence of (alpha, beta, gamma) triples", grid)
    out = []
    for triple in triples:
        out.append(tuple(check_real(v, name=f"grid[{n!r}]", func=func, low=0.0,
                                    closed="neither")
                         for n, v in zip(("alpha", "beta", "gamma"), triple, strict=True)))
    if not out:
        raise param_error("grid", func, "non-empty", grid)
    return out  # type: ignore[return-value]


def search_coefficients(evaluate: Callable[[nn.Module, int], float], *,
                        grid: Mapping[str, Iterable[float]] | Iterable[Iterable[float]]
                        | None = None,
                        target_ratio: float = 2.0, tolerance: float = 0.05,
                        phi: float = 1.0, base_resolution: int = 224,
                        **model_kwargs: Any) -> Bunch:
    """Grid-search the compound coefficients (α, β, γ) under ``α·β²·γ² ≈ target_ratio``.

    Every grid point whose cost factor ``α·β²·γ²`` lies within
    ``tolerance`` (relative) of ``target_ratio`` is built with
    :func:`efficientnet` at ``phi`` and scored by ``evaluate``; higher
    scores are better.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(model, resolution) -> float``; typically trains ``model``
        on images resized to ``resolution`` and returns validation accuracy.
    grid : dict or sequence, optional
        ``{"alpha": [...], "beta": [...], "gamma": [...]}`` (all combinations)
        or a sequence of ``(alpha, beta, gamma)`` triples. Default
        :data:`DEFAULT_GRID` (1.00 to 1.40 in steps of 0.05 on each axis).
    target_ratio : float, default 2.0
        The cost factor per unit φ to aim for (the paper's 2).
    tolerance : float, default 0.05
        Keep grid points with ``|α·β²·γ² / target_ratio - 1| <= tolerance``
        (the paper's 1.2, 1.1, 1.15 gives 1.92, 4 % below 2).
    phi : float, default 1.0
        The φ every candidate is built at (the paper fixes φ = 1).
    base_resolution : int, default 224
        Resolution at φ = 0; each candidate's resolution is scaled from it.
    **model_kwargs
        Passed to :func:`efficientnet` (``num_classes``, ``in_channels``,
        ``dropout``, ...).

    Returns
    -------
    sklearn.utils.Bunch
        ``results``: a dict of equal-length columns, one row per candidate
        (``pandas.DataFrame(result.results)`` shows it): ``param_alpha``,
        ``param_beta``, ``param_gamma``, ``params`` (list of dicts),
        ``cost_factor``, ``depth``, ``width``, ``resolution``, ``n_params``,
        ``macs``, ``score``, ``rank_score`` (1 is best; ties share the lowest
        rank; NaN scores rank last). ``best_index``, ``best_params`` and
        ``best_score`` describe the winner.

    Raises
    ------
    ValueError
        No grid point within the tolerance, bad coefficients or settings.
    TypeError
        ``evaluate`` is not callable or returns something that is not a number.

    Examples
    --------
    A synthetic score that prefers wide models (no training needed):

    >>> from captum_effnet.models import search_coefficients
    >>> def evaluate(model, resolution):
    ...     return model.meta["width"]
    >>> result = search_coefficients(
    ...     evaluate, grid=[(1.2, 1.1, 1.15), (1.0, 1.4, 1.0), (2.0, 1.0, 1.0)],
    ...     num_classes=10)
    >>> result.best_params
    {'alpha': 1.0, 'beta': 1.4, 'gamma': 1.0}
    >>> result.results["cost_factor"].round(2).tolist()
    [1.92, 1.96, 2.0]
    """
    func = "search_coefficients"
    if not callable(evaluate):
        raise param_error("evaluate", func, "a callable evaluate(model, resolution) -> float",
                          evaluate, exc=TypeError)
    target_ratio = check_real(target_ratio, name="target_ratio", func=func, low=0.0,
                              closed="neither")
    tolerance = check_real(tolerance, name="tolerance", func=func, low=0.0)
    phi = check_real(phi, name="phi", func=func)
    base_resolution = check_int(base_resolution, name="base_resolution", func=func, low=1)
    triples = _candidates(DEFAULT_GRID if grid is None else grid, func)
    kept = [t for t in triples
            if abs(t[0] * t[1] ** 2 * t[2] ** 2 / target_ratio - 1.0) <= tolerance]
    if not kept:
        factors = sorted(a * b * b * g * g for a, b, g in triples)
        raise param_error(
            "grid", func,
            f"to contain at least one (alpha, beta, gamma) with alpha*beta**2*gamma**2 within "
            f"{tolerance:g} (relative) of target_ratio={target_ratio:g}; its cost factors "
            f"range from {factors[0]:.3g} to {factors[-1]:.3g}", grid)
    cols: dict[str, list[Any]] = {k: [] for k in (
        "param_alpha", "param_beta", "param_gamma", "params", "cost_factor", "depth", "width",
        "resolution", "n_params", "macs", "score")}
    for alpha, beta, gamma in kept:
        model = efficientnet(phi, alpha=alpha, beta=beta, gamma=gamma,
                             base_resolution=base_resolution, **model_kwargs)
        meta = model.meta
        res = int(meta["resolution"])
        raw = evaluate(model, res)
        try:
            score = float(raw)
        except (TypeError, ValueError):
            who = getattr(evaluate, "__name__", type(evaluate).__name__)
            raise TypeError(
                f"The 'evaluate' parameter of {func} must return a real number. "
                f"Got {raw!r} from {who}(model, {res}) instead.") from None
        cost = estimate_cost(stage_plan("efficientnet", meta["width"], meta["depth"]), res,
                             num_classes=meta["num_classes"], in_channels=meta["in_channels"])
        cols["param_alpha"].append(alpha)
        cols["param_beta"].append(beta)
        cols["param_gamma"].append(gamma)
        cols["params"].append({"alpha": alpha, "beta": beta, "gamma": gamma})
        cols["cost_factor"].append(alpha * beta**2 * gamma**2)
        cols["depth"].append(meta["depth"])
        cols["width"].append(meta["width"])
        cols["resolution"].append(res)
        cols["n_params"].append(cost.params)
        cols["macs"].append(cost.macs)
        cols["score"].append(score)
        del model
    results: dict[str, Any] = {k: (v if k == "params" else np.asarray(v))
                               for k, v in cols.items()}
    scores = results["score"].astype(float)
    key = np.where(np.isnan(scores), -np.inf, scores)
    # rank 1 = best; ties share the lowest rank (scipy's "min" method)
    results["rank_score"] = np.array([1 + int(np.sum(key > s)) for s in key])
    best = int(np.argmin(results["rank_score"]))
    return Bunch(results=results, best_index=best, best_params=dict(cols["params"][best]),
                 best_score=float(scores[best]))


def phi_for_budget(max_macs: float | None = None, max_params: float | None = None, *,
                   alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15,
                   base_resolution: int = 224, num_classes: int = 1000, in_channels: int = 3,
                   step: float = 0.01, phi_min: float = -10.0, phi_max: float = 100.0) -> float:
    """The largest φ (a multiple of ``step``) whose model fits the budget.

    Costs are computed in closed form (the same numbers :func:`profile`
    measures with FlopCounterMode), so no model is built. Cost never decreases
    with φ when α, β, γ >= 1, which the search requires.

    Parameters
    ----------
    max_macs : float, optional
        Largest allowed multiply-accumulates per image (e.g. ``1e9``).
    max_params : float, optional
        Largest allowed parameter count. At least one budget is required.
    alpha, beta, gamma : float, default 1.2, 1.1, 1.15
        Compound-scaling bases (each >= 1).
    base_resolution, num_classes, in_channels : int
        As for :func:`efficientnet`.
    step : float, default 0.01
        Resolution of the answer.
    phi_min, phi_max : float, default -10, 100
        Search interval; ``phi_max`` is returned if even it fits.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        No budget, a non-positive budget, coefficients below 1, or a budget
        that even ``phi_min`` exceeds (the message gives that smallest cost).

    Examples
    --------
    >>> from captum_effnet.models import phi_for_budget, profile, efficientnet
    >>> phi = phi_for_budget(max_macs=1e9)
    >>> phi
    1.06
    >>> import torch
    >>> with torch.device("meta"):
    ...     inside, outside = efficientnet(phi), efficientnet(phi + 0.01)
    >>> profile(inside).macs <= 1e9 < profile(outside).macs
    True
    """
    func = "phi_for_budget"
    if max_macs is None and max_params is None:
        raise param_error("max_macs", func, "given (or max_params), a positive number", None)
    budgets = {}
    for name, value in (("max_macs", max_macs), ("max_params", max_params)):
        if value is not None:
            budgets[name] = check_real(value, name=name, func=func, low=0.0, closed="neither")
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        check_real(value, name=name, func=func, low=1.0)
    base_resolution = check_int(base_resolution, name="base_resolution", func=func, low=1)
    num_classes = check_int(num_classes, name="num_classes", func=func, low=1)
    in_channels = check_int(in_channels, name="in_channels", func=func, low=1)
    step = check_real(step, name="step", func=func, low=0.0, closed="neither")
    phi_min = check_real(phi_min, name="phi_min", func=func)
    phi_max = check_real(phi_max, name="phi_max", func=func, low=phi_min)
    scaling = CompoundScaling(alpha, beta, gamma, base_resolution)

    def cost(phi: float) -> Cost:
        depth, width, res = scaling.multipliers(phi)
        return estimate_cost(stage_plan("efficientnet", width, depth), res,
                             num_classes=num_classes, in_channels=in_channels)

    def fits(k: int) -> bool:
        c = cost(k * step)
        return (c.macs <= budgets.get("max_macs", math.inf)
                and c.params <= budgets.get("max_params", math.inf))

    lo, hi = math.ceil(phi_min / step), math.floor(phi_max / step)
    if not fits(lo):
        smallest = cost(lo * step)
        raise ValueError(
            f"No phi in [{phi_min:g}, {phi_max:g}] fits the budget "
            + ", ".join(f"{k}={v:.4g}" for k, v in budgets.items())
            + f": the smallest model (phi={lo * step:g}) has {smallest.macs:,} MACs and "
            f"{smallest.params:,} parameters."
        )
    if fits(hi):
        return round(hi * step, 10)
    while hi - lo > 1:  # invariant: fits(lo) and not fits(hi)
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return round(lo * step, 10)
