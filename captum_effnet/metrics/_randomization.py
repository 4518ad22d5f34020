"""Model parameter randomisation test (Adebayo et al., "Sanity Checks for
Saliency Maps", NeurIPS 2018).

An explanation that stays the same when the model's weights are replaced by
random ones does not explain the model. The test re-initialises the model's
blocks from the output towards the input (*cascading*: the randomised blocks
accumulate; *independent*: one block at a time) and reports, per sample and
block, the Spearman rank correlation between the trained model's map and the
randomised model's map. Faithful methods give correlations that fall towards
0; a method that ignores the model (an edge detector) stays near 1.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._validation import check_choice, check_int, check_type, param_error

__all__ = ["RandomizationResult", "randomization_test", "randomization_units"]

_FUNC = "randomization_test"


@dataclass(frozen=True)
class RandomizationResult:
    """Result of :func:`randomization_test`.

    Attributes
    ----------
    layers : list of str
        Names of the randomised blocks, in the order they were randomised
        (output side first). Row ``j`` of the tables below is after block ``j``
        (cascading: blocks ``0..j`` random; independent: block ``j`` only).
    correlation : Tensor of shape (len(layers), N)
        Spearman rank correlation (ties get their average rank) between the
        trained and the randomised model's maps. Never NaN: where it is
        undefined because a map is constant it is 0.0 and ``constant`` says so.
    constant : Tensor of shape (len(layers), N), bool
        The randomised map, or the trained one, is constant (e.g. an all-zero
        Grad-CAM after the ReLU), so the correlation is undefined and reported
        as 0.0: the explanation kept nothing of the trained model's ranking.
        Check ``trained_constant`` too: a constant *trained* map makes the
        whole test uninformative for that sample.
    trained_constant : Tensor of shape (N,), bool
        The trained model's map is constant.
    mode : str
        ``"cascading"`` or ``"independent"``.
    """

    layers: list[str]
    correlation: Tensor
    constant: Tensor
    trained_constant: Tensor
    mode: str


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def randomization_units(model: nn.Module) -> list[str]:
    """Default blocks randomised by :func:`randomization_test`, output side first.

    The model's direct children, with every ``nn.Sequential`` child opened one
    level, keeping those with parameters, in reverse order. For a
    torchvision EfficientNet: ``classifier.1``, ``features.8``, ...,
    ``features.0``.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
    ...                           torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2)))
    >>> randomization_units(net)
    ['2.1', '0']
    """
    check_type(model, nn.Module, name="model", func="randomization_units",
               expected="a torch.nn.Module")
    names: list[str] = []
    for name, child in model.named_children():
        if isinstance(child, nn.Sequential):
            names += [f"{name}.{sub}" for sub, grand in child.named_children()
                      if _has_params(grand)]
        elif _has_params(child):
            names.append(name)
    return names[::-1]


def _randomize(module: nn.Module) -> None:
    """Re-initialise every parameter (and batch-norm statistics) of ``module``.

    Submodules with ``reset_parameters`` use it (PyTorch's default
    initialisation, which also resets batch-norm running statistics); other
    directly held parameters are redrawn from a normal with their own mean
    and standard deviation.
    """
    for sub in module.modules():
        own = list(sub.parameters(recurse=False))
        reset = getattr(sub, "reset_parameters", None)
        with torch.no_grad():
            if callable(reset) and own:
                reset()
            else:
                for p in own:
                    std = float(p.std()) if p.numel() > 1 else 0.0
                    p.normal_(float(p.mean()), std if std > 0 else 0.02)


def _ranks(x: Tensor) -> Tensor:
    """Average ranks along the last axis (ties share their mean rank), float64."""
    n, m = x.shape
    order = torch.sort(x, dim=1, stable=True)
    sorted_x, idx = order.values, order.indices
    pos = torch.arange(m, dtype=torch.float64).expand(n, m)
    # Groups of equal values: first position of each group, mean position of the group.
    new = torch.ones(n, m, dtype=torch.bool)
    new[:, 1:] = sorted_x[:, 1:] != sorted_x[:, :-1]
    group = new.long().cumsum(1) - 1
    sums = torch.zeros(n, m, dtype=torch.float64).scatter_add_(1, group, pos)
    counts = torch.zeros(n, m, dtype=torch.float64).scatter_add_(1, group, torch.ones(n, m,
                                                                                    dtype=torch.float64))
    mean_rank = (sums / counts.clamp_min(1)).gather(1, group)
    return torch.empty(n, m, dtype=torch.float64).scatter_(1, idx, mean_rank)


def spearman(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Row-wise Spearman correlation of ``(N, ...)`` tensors, and a constant flag.

    Where either row is constant the correlation is undefined: 0.0 is returned
    there and the flag is True.
    """
    ra = _ranks(a.detach().flatten(1).double().cpu())
    rb = _ranks(b.detach().flatten(1).double().cpu())
    ra = ra - ra.mean(1, keepdim=True)
    rb = rb - rb.mean(1, keepdim=True)
    den = torch.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    constant = den == 0
    rho = (ra * rb).sum(1) / torch.where(constant, torch.ones_like(den), den)
    return torch.where(constant, torch.zeros_like(rho), rho).float(), constant


def _map_kwargs(kwargs: dict[str, Any], original: nn.Module, copy_: nn.Module) -> dict[str, Any]:
    """Replace submodules of the user's model in ``kwargs`` by the copy's."""
    names = {id(m): n for n, m in original.named_modules()}
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, nn.Module) and id(value) in names:
            value = copy_.get_submodule(names[id(value)]) if names[id(value)] else copy_
        out[key] = value
    return out


def randomization_test(
    attribution_cls: Callable[..., Any],
    model: nn.Module,
    inputs: Tensor,
    target: Any = None,
    *,
    layers: str = "cascading",
    units: Sequence[str] | None = None,
    init_kwargs: dict[str, Any] | None = None,
    attribute_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
) -> RandomizationResult:
    """Rank correlation between the trained model's maps and randomised models'.

    The user's ``model`` is never touched: everything runs on deep copies put
    in eval mode (weights, buffers, mode flags, hooks and ``.grad`` stay as
    they were).

    Parameters
    ----------
    attribution_cls : callable
        A Captum attribution class (e.g. :class:`~captum_effnet.attr.GradCam`)
        or any callable ``attribution_cls(model, **init_kwargs)`` returning an
        object with ``attribute(inputs, target=..., **attribute_kwargs)``.
    model : torch.nn.Module
        The trained model.
    inputs : Tensor of shape (N, ...)
        The inputs explained.
    target : optional
        Passed to ``attribute`` unchanged. ``None`` is replaced by the trained
        model's predicted classes, so every model explains the same classes.
    layers : {"cascading", "independent"}, default "cascading"
        ``"cascading"``: randomise the blocks one after the other from the
        output side, keeping the earlier ones random; ``"independent"``:
        randomise one block at a time in a fresh copy of the trained model.
    units : sequence of str, optional
        Names of the submodules (blocks) to randomise, output side first;
        default :func:`randomization_units` (``classifier.1``, ``features.8``
        ... ``features.0`` for an EfficientNet).
    init_kwargs : dict, optional
        Keyword arguments of ``attribution_cls``. Submodules of ``model``
        among the values (e.g. ``layer=model.features[-1]``) are replaced by
        the copy's corresponding submodule.
    attribute_kwargs : dict, optional
        Keyword arguments of ``attribute``.
    seed : int, default 0
        Seed of the re-initialisation (the global random state is restored
        afterwards).

    Returns
    -------
    RandomizationResult
        ``correlation`` and ``constant`` of shape ``(len(units), N)``.

    Examples
    --------
    >>> import torch
    >>> from captum_effnet.attr import GradCam
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
    ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...                           torch.nn.Linear(4, 2))
    >>> res = randomization_test(GradCam, net, torch.rand(2, 3, 8, 8), target=0,
    ...                          init_kwargs={"layer": net[0]})
    >>> res.layers, tuple(res.correlation.shape)
    (['4', '0'], (2, 2))
    """
    if not callable(attribution_cls):
        raise param_error("attribution_cls", _FUNC,
                          "a Captum attribution class or a callable (model, **init_kwargs) -> "
                          "attribution", attribution_cls, exc=TypeError)
    check_type(model, nn.Module, name="model", func=_FUNC, expected="a torch.nn.Module")
    if not isinstance(inputs, Tensor):
        raise param_error("inputs", _FUNC, "a Tensor", inputs, exc=TypeError)
    if inputs.dim() < 2 or inputs.shape[0] == 0:
        raise param_error("inputs", _FUNC, "a non-empty batch (N, ...)",
                          f"a tensor of shape {tuple(inputs.shape)}")
    if inputs.is_floating_point() and not torch.isfinite(inputs).all():
        raise param_error("inputs", _FUNC, "finite (no NaN or inf)",
                          "a tensor with non-finite values")
    check_choice(layers, ["cascading", "independent"], name="layers", func=_FUNC)
    seed = check_int(seed, name="seed", func=_FUNC, low=0)
    for name, value in (("init_kwargs", init_kwargs), ("attribute_kwargs", attribute_kwargs)):
        if value is not None:
            check_type(value, dict, name=name, func=_FUNC, expected="a dict or None")
    init_kwargs = dict(init_kwargs or {})
    attribute_kwargs = dict(attribute_kwargs or {})
    if units is None:
        units = randomization_units(model)
        if not units:
            raise param_error("model", _FUNC, "a model with parameters to randomise",
                              type(model).__name__)
    else:
        if isinstance(units, str) or not isinstance(units, Sequence):
            raise param_error("units", _FUNC, "a sequence of submodule names",
                              units, exc=TypeError)
        names = [n for n, _ in model.named_modules() if n]
        units = list(units)
        for u in units:
            if u not in names:
                check_choice(u, names, name="units", func=_FUNC)
        if not units:
            raise param_error("units", _FUNC, "a non-empty sequence of submodule names", units)

    trained = copy.deepcopy(model).eval()
    x = inputs.detach()

    def explain(net: nn.Module) -> Tensor:
        method = attribution_cls(net, **_map_kwargs(init_kwargs, model, net))
        out = method.attribute(x, target=target, **attribute_kwargs)
        if isinstance(out, tuple):
            out = torch.cat([o.flatten(1) for o in out], 1)
        if not isinstance(out, Tensor):
            raise param_error("attribution_cls", _FUNC,
                              "an attribution whose attribute() returns a Tensor or tuple",
                              f"one returning {type(out).__name__}", exc=TypeError)
        out = out.detach().float()
        if not torch.isfinite(out).all():
            raise ValueError(f"{_FUNC}: the attribution of {type(net).__name__} holds NaN "
                             "or inf; the rank correlation would be meaningless.")
        return out.reshape(x.shape[0], -1)

    if target is None:
        with torch.no_grad():
            target = trained(x).argmax(1)
    reference = explain(trained)
    _, trained_constant = spearman(reference, reference)

    rows, flags = [], []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        work = copy.deepcopy(trained)
        for unit in units:
            if layers == "independent":
                work = copy.deepcopy(trained)
            _randomize(work.get_submodule(unit))
            rho, const = spearman(reference, explain(work))
            rows.append(rho)
            flags.append(const)
    return RandomizationResult(layers=list(units), correlation=torch.stack(rows),
                               constant=torch.stack(flags), trained_constant=trained_constant,
                               mode=layers)
