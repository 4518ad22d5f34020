"""What a model costs: parameters, multiply-accumulates and activation memory.

:func:`profile` measures a real (or meta-device) forward pass with
:class:`torch.utils.flop_counter.FlopCounterMode`; half its FLOP total is the
MAC count torchvision publishes as ``_ops`` (convolutions and the classifier;
batch norm, activations and pooling are not counted). :func:`estimate_cost`
computes the same two numbers in closed form from a :class:`StagePlan`,
without building anything; the factory uses it to refuse a φ whose model
would not fit in memory, and :func:`~captum_effnet.models.phi_for_budget` to
search φ quickly. The tests check the two agree exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .._validation import check_int, check_real, check_type, param_error
from ._scaling import CompoundScaling, StagePlan, round_channels

__all__ = ["Cost", "ModelProfile", "estimate_cost", "profile", "scale_table"]


class Cost(NamedTuple):
    """Closed-form parameter and MAC counts of one architecture at one resolution."""

    params: int
    macs: int


def _out(size: int, stride: int) -> int:
    # odd kernels with padding (k-1)//2 (torchvision) or TF "SAME" (Lite): ceil(size/stride)
    return -(-size // stride)


def estimate_cost(plan: StagePlan, resolution: int, *, num_classes: int = 1000,
                  in_channels: int = 3) -> Cost:
    """Parameters and MACs of the network described by ``plan``, in closed form.

    Counts what :class:`~torch.utils.flop_counter.FlopCounterMode` counts
    (convolutions and the final linear layer, MACs = FLOPs / 2) and every
    parameter (batch-norm weight and bias included, running statistics not).

    Examples
    --------
    >>> from captum_effnet.models._scaling import stage_plan
    >>> cost = estimate_cost(stage_plan("efficientnet", 1.0, 1.0), 224)
    >>> cost.params, round(cost.macs / 1e9, 3)
    (5288548, 0.386)
    """
    se = plan.family == "efficientnet"
    h = _out(resolution, 2)
    params = in_channels * plan.stem * 9 + 2 * plan.stem
    macs = h * h * in_channels * plan.stem * 9
    for st in plan.stages:
        # the first block of a stage changes width and stride; the others are identical
        for c_in, stride, count in ((st.in_channels, st.stride, 1),
                                    (st.out_channels, 1, st.layers - 1)):
            if count < 1:
                continue
            expanded = round_channels(c_in, st.expand_ratio)
            p = m = 0
            if expanded != c_in:
                p += c_in * expanded + 2 * expanded
                m += h * h * c_in * expanded
            h = _out(h, stride)
            p += expanded * st.kernel**2 + 2 * expanded
            m += h * h * expanded * st.kernel**2
            if se:
                squeeze = max(1, c_in // 4)
                p += 2 * expanded * squeeze + squeeze + expanded
                m += 2 * expanded * squeeze
            p += expanded * st.out_channels + 2 * st.out_channels
            m += h * h * expanded * st.out_channels
            params += count * p
            macs += count * m
    last = plan.stages[-1].out_channels
    params += last * plan.head + 2 * plan.head + plan.head * num_classes + num_classes
    macs += h * h * last * plan.head + plan.head * num_classes
    return Cost(int(params), int(macs))


@dataclass(frozen=True)
class ModelProfile:
    """The cost of one model at one input resolution (batch of one image).

    Attributes
    ----------
    name : str or None
        The model's name (``model.meta["name"]``) when known.
    params : int
        Number of parameters (``sum(p.numel() for p in model.parameters())``).
    macs : int
        Multiply-accumulates of one forward pass: FlopCounterMode total / 2.
    gmacs : float
        ``macs / 1e9``; torchvision's ``_ops``.
    resolution : int
        Side of the square input image.
    activation_bytes : int
        Sum of the sizes in bytes of every leaf module's output for one image:
        roughly what a training step keeps for the backward pass.
    """

    name: str | None
    params: int
    macs: int
    gmacs: float
    resolution: int
    activation_bytes: int


def _first_conv(model: nn.Module) -> nn.Conv2d | None:
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)


def profile(model_or_name: nn.Module | str, resolution: int | None = None) -> ModelProfile:
    """Parameters, MACs and activation memory of a model.

    Parameters
    ----------
    model_or_name : torch.nn.Module or str
        A model (any ``nn.Module`` taking ``(N, C, H, W)`` images) or a
        built-in name such as ``"efficientnet_b0"``; a name is built on the
        ``meta`` device, so nothing is allocated or computed for real.
    resolution : int, optional
        Input side in pixels. Defaults to ``model.meta["resolution"]`` (or the
        built-in's published resolution); required for other models.

    Returns
    -------
    ModelProfile
        ``name``, ``params``, ``macs``, ``gmacs``, ``resolution``,
        ``activation_bytes``.

    Raises
    ------
    ValueError
        Unknown name, a non-positive resolution, or no resolution for a model
        without ``meta``.
    TypeError
        Neither a module nor a string.

    Examples
    --------
    >>> from captum_effnet.models import profile
    >>> p = profile("efficientnet_b0")
    >>> p.params, p.gmacs, p.resolution
    (5288548, 0.385814752, 224)
    """
    func = "profile"
    check_type(model_or_name, (nn.Module, str), name="model_or_name", func=func,
               expected="an nn.Module or a built-in model name")
    if isinstance(model_or_name, str):
        from ._efficientnet import BUILTIN_MODELS

        if model_or_name not in BUILTIN_MODELS:
            from .._validation import check_choice

            check_choice(model_or_name, sorted(BUILTIN_MODELS), name="model_or_name", func=func)
        builder, _ = BUILTIN_MODELS[model_or_name]
        with torch.device("meta"):
            model = builder()
    else:
        model = model_or_name
    meta: dict[str, Any] = getattr(model, "meta", None) or {}
    if resolution is None:
        resolution = meta.get("resolution")
        if resolution is None:
            raise param_error("resolution", func, "given (an int >= 1) for a model without a "
                              "'meta' dict", None)
    resolution = check_int(resolution, name="resolution", func=func, low=1)
    conv = _first_conv(model)
    in_channels = int(meta.get("in_channels") or (conv.in_channels if conv is not None else 3))
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    x = torch.zeros(1, in_channels, resolution, resolution, device=device, dtype=dtype)

    act = [0]

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                act[0] += t.numel() * t.element_size()

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    macs = int(counter.get_total_flops()) // 2
    return ModelProfile(
        name=meta.get("name"),
        params=sum(p.numel() for p in model.parameters()),
        macs=macs,
        gmacs=macs / 1e9,
        resolution=resolution,
        activation_bytes=int(act[0]),
    )


def scale_table(phis: Iterable[float], *, alpha: float = 1.2, beta: float = 1.1,
                gamma: float = 1.15, base_resolution: int = 224,
                num_classes: int = 1000) -> list[dict[str, Any]]:
    """One row per φ: multipliers, resolution, parameters, GMACs, cost ratios.

    Each model is built on the meta device and measured with :func:`profile`.
    ``ratio`` is the measured GMACs over those at φ = 0 (same coefficients);
    ``predicted`` is the paper's ``(alpha * beta**2 * gamma**2) ** phi``.
    Floats are rounded for display (multipliers to 3 decimals, GMACs to 3,
    ratios to 2). This is the table ``captum-effnet scale`` prints.

    Examples
    --------
    >>> rows = scale_table([0, 1])
    >>> list(rows[0])
    ['phi', 'depth', 'width', 'resolution', 'params', 'gmacs', 'ratio', 'predicted']
    >>> [(r["phi"], r["resolution"], r["params"], r["gmacs"], r["ratio"]) for r in rows]
    [(0.0, 224, 5288548, 0.386, 1.0), (1.0, 256, 9109994, 0.86, 2.23)]
    """
    from ._efficientnet import efficientnet

    if isinstance(phis, (str, bytes)) or not isinstance(phis, Iterable):
        raise param_error("phis", "scale_table", "an iterable of real numbers", phis,
                          exc=TypeError)
    phis = list(phis)
    for phi in phis:
        check_real(phi, name="phis", func="scale_table")
    if not phis:
        raise param_error("phis", "scale_table", "a non-empty sequence of real numbers", phis)
    scaling = CompoundScaling(alpha, beta, gamma, base_resolution)

    def measure(phi: float) -> tuple[ModelProfile, dict[str, Any]]:
        with torch.device("meta"):
            model = efficientnet(phi, alpha=alpha, beta=beta, gamma=gamma,
                                 num_classes=num_classes, base_resolution=base_resolution)
        return profile(model), model.meta

    base, _ = measure(0.0)
    rows = []
    for phi in phis:
        p, meta = measure(phi)
        rows.append({
            "phi": float(phi),
            "depth": round(meta["depth"], 3),
            "width": round(meta["width"], 3),
            "resolution": p.resolution,
            "params": p.params,
            "gmacs": round(p.gmacs, 3),
            "ratio": round(p.macs / base.macs, 2),
            "predicted": round(scaling.cost_ratio(phi), 2),
        })
    return rows

