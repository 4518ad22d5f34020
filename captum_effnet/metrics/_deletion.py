"""Deletion and insertion curves (Petsiuk et al., "RISE: Randomized Input
Sampling for Explanation of Black-box Models", BMVC 2018)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._validation import check_int, check_type, param_error

__all__ = ["DeletionInsertion", "deletion_insertion"]

_FUNC = "deletion_insertion"


@dataclass(frozen=True)
class DeletionInsertion:
    """Result of :func:`deletion_insertion`.

    Attributes
    ----------
    deletion : Tensor of shape (N,)
        Area under the deletion curve (lower = the map found what matters).
    insertion : Tensor of shape (N,)
        Area under the insertion curve (higher = better).
    deletion_curve, insertion_curve : Tensor of shape (N, steps + 1)
        The target's score after each step.
    fractions : Tensor of shape (steps + 1,)
        Fraction of the pixels deleted (inserted) at each point, 0 to 1.
    target : Tensor of shape (N,)
        The class scored for each sample.
    """

    deletion: Tensor
    insertion: Tensor
    deletion_curve: Tensor
    insertion_curve: Tensor
    fractions: Tensor
    target: Tensor


def _check_inputs(inputs: Any) -> Tensor:
    if not isinstance(inputs, Tensor):
        raise param_error("inputs", _FUNC, "a Tensor of images (N, C, H, W)", inputs,
                          exc=TypeError)
    if inputs.dim() != 4 or inputs.numel() == 0:
        raise param_error("inputs", _FUNC, "a non-empty Tensor of images (N, C, H, W)",
                          f"a tensor of shape {tuple(inputs.shape)}")
    if not inputs.is_floating_point():
        raise param_error("inputs", _FUNC, "a floating-point Tensor",
                          f"a tensor of dtype {inputs.dtype}", exc=TypeError)
    if not torch.isfinite(inputs).all():
        raise param_error("inputs", _FUNC, "finite (no NaN or inf)",
                          "a tensor with non-finite values")
    return inputs.detach()


def _check_attributions(attributions: Any, inputs: Tensor) -> Tensor:
    n, _, h, w = inputs.shape
    expected = f"a Tensor of shape (N, H, W), (N, 1, H, W) or (N, C, H, W) with N={n}, H={h}, W={w}"
    if not isinstance(attributions, Tensor):
        raise param_error("attributions", _FUNC, expected, attributions, exc=TypeError)
    a = attributions.detach()
    if a.dim() == 3:
        a = a[:, None]
    if a.dim() != 4 or a.shape[0] != n or tuple(a.shape[2:]) != (h, w):
        raise param_error("attributions", _FUNC, expected + " (upsample coarse maps first)",
                          f"a tensor of shape {tuple(attributions.shape)}")
    if a.is_complex() or a.dtype == torch.bool:
        raise param_error("attributions", _FUNC, "a real Tensor",
                          f"a tensor of dtype {a.dtype}", exc=TypeError)
    a = a.float().sum(1)
    if not torch.isfinite(a).all():
        raise param_error("attributions", _FUNC, "finite (no NaN or inf)",
                          "a tensor with non-finite values")
    return a


def _check_baseline(baseline: Any, inputs: Tensor) -> Tensor:
    expected = "a finite real number or a finite Tensor broadcastable to the inputs"
    if isinstance(baseline, bool):
        raise param_error("baseline", _FUNC, expected, baseline, exc=TypeError)
    if isinstance(baseline, (int, float)):
        b = torch.full((1, 1, 1, 1), float(baseline), dtype=inputs.dtype, device=inputs.device)
    elif isinstance(baseline, Tensor):
        b = baseline.detach().to(dtype=inputs.dtype, device=inputs.device)
        try:
            torch.broadcast_shapes(b.shape, inputs.shape)
            ok = torch.broadcast_shapes(b.shape, inputs.shape) == inputs.shape
        except RuntimeError:
            ok = False
        if not ok:
            raise param_error("baseline", _FUNC, expected + f" {tuple(inputs.shape)}",
                              f"a tensor of shape {tuple(baseline.shape)}")
        while b.dim() < 4:
            b = b[None]
    else:
        raise param_error("baseline", _FUNC, expected, baseline, exc=TypeError)
    if not torch.isfinite(b).all():
        raise param_error("baseline", _FUNC, expected, "a value with NaN or inf")
    return b


def _check_target(target: Any, n: int) -> Tensor | None:
    expected = f"None, an int, or a sequence / 1-D Tensor of {n} ints (one per sample)"
    if target is None:
        return None
    if isinstance(target, bool):
        raise param_error("target", _FUNC, expected, target, exc=TypeError)
    if isinstance(target, int):
        return torch.full((n,), target, dtype=torch.long)
    if isinstance(target, Tensor):
        t = target.detach().cpu()
        if t.dim() == 0:
            t = t.expand(n)
        if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
            raise param_error("target", _FUNC, expected, f"a tensor of dtype {t.dtype}",
                              exc=TypeError)
    elif isinstance(target, (list, tuple)):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in target):
            raise param_error("target", _FUNC, expected, target, exc=TypeError)
        t = torch.tensor(list(target), dtype=torch.long)
    else:
        raise param_error("target", _FUNC, expected, target, exc=TypeError)
    if t.dim() != 1 or t.shape[0] != n:
        raise param_error("target", _FUNC, expected, f"{t.numel()} targets")
    return t.long()


def _scores(forward_func: Callable[..., Any], x: Tensor, target: Tensor | None,
            softmax: bool, args: tuple[Any, ...]) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        out = forward_func(x, *args)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise param_error("forward_func", _FUNC,
                          "a callable returning scores of shape (N, classes)",
                          f"a callable returning {shape}", exc=TypeError)
    out = out.float()
    if softmax:
        out = out.softmax(1)
    if target is None:
        target = out.argmax(1).cpu()
    if int(target.min()) < 0 or int(target.max()) >= out.shape[1]:
        raise param_error("target", _FUNC, f"class indices in [0, {out.shape[1]})",
                          target.tolist())
    picked = out.gather(1, target.to(out.device)[:, None])[:, 0]
    return picked.cpu(), target


def deletion_insertion(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    attributions: Tensor,
    target: Any = None,
    *,
    steps: int = 20,
    baseline: float | Tensor = 0.0,
    batch_size: int = 64,
    softmax: bool = True,
    additional_forward_args: Any = None,
) -> DeletionInsertion:
    """Deletion and insertion AUC of attribution maps, per sample.

    Pixels are ranked by the map, most important first. *Deletion* replaces
    them, ``1/steps`` of the image at a time, by the ``baseline`` and records
    the target's score after each step; a faithful map makes the score fall
    fast (small area). *Insertion* starts from the baseline and puts the
    pixels back in the same order; a faithful map makes the score rise fast
    (large area). Areas use the trapezoidal rule over the deleted fraction
    ``0, 1/steps, ..., 1`` (RISE's ``auc``), so they lie in ``[0, 1]`` for
    probabilities.

    Parameters
    ----------
    forward_func : callable
        Model or function ``(N, C, H, W) -> (N, classes)``; run under
        ``torch.no_grad`` and as given (put a model in eval mode first:
        batch-norm in train mode would mix the images of a batch).
    inputs : Tensor of shape (N, C, H, W)
        The images as the model takes them (already normalised).
    attributions : Tensor of shape (N, H, W), (N, 1, H, W) or (N, C, H, W)
        The maps, at the inputs' height and width (channels are summed).
        Larger = more important.
    target : int, sequence of int or Tensor, optional
        Class scored per sample; ``None``: each sample's predicted class on
        the unperturbed inputs.
    steps : int, default 20
        Number of deletion steps; each removes ``round(k * H * W / steps)``
        pixels in total after step ``k``. Cost: ``2 * N * (steps + 1)``
        images through the model.
    baseline : float or Tensor, default 0.0
        What deleted pixels become (in the model's input space: 0 is the
        mean colour for mean/std-normalised inputs). A Tensor broadcastable
        to ``inputs`` (e.g. a blurred copy, RISE's insertion start) is used
        as is. Deletion ends and insertion starts at the baseline.
    batch_size : int, default 64
        Images per forward pass.
    softmax : bool, default True
        Score the softmax probability of the target (RISE's choice), not the
        raw output. Probabilities are comparable across images and bounded;
        ``False`` scores the raw output (e.g. logits).
    additional_forward_args : Any, optional
        Extra arguments passed unchanged to every ``forward_func`` call after
        the images. They must not be per-sample: a batch mixes samples and
        steps.

    Returns
    -------
    DeletionInsertion
        ``deletion`` and ``insertion`` AUCs ``(N,)``, the curves, the
        fractions and the targets.

    Notes
    -----
    Ties in the map are broken by pixel index (row-major, stable sort), so a
    constant map deletes the image row by row from the top: it is an
    arbitrary but deterministic ordering, not a neutral one.

    Compare maps of similar smoothness: a random *per-pixel* map scatters
    the deleted pixels, which destroys an image faster than deleting coherent
    regions, so it looks good on deletion for reasons unrelated to the model.

    Examples
    --------
    >>> import torch
    >>> f = lambda x: x.flatten(1)[:, :1] * torch.tensor([[1.0, 0.0]])  # class 0 = pixel 0
    >>> x = torch.ones(1, 1, 2, 2)
    >>> good = torch.tensor([[[4.0, 3.0], [2.0, 1.0]]])  # pixel 0 first
    >>> r = deletion_insertion(f, x, good, 0, steps=4, softmax=False)
    >>> r.deletion_curve.tolist(), r.deletion.item()
    ([[1.0, 0.0, 0.0, 0.0, 0.0]], 0.125)
    >>> r.insertion_curve.tolist(), r.insertion.item()
    ([[0.0, 1.0, 1.0, 1.0, 1.0]], 0.875)
    """
    if not callable(forward_func):
        raise param_error("forward_func", _FUNC, "a callable (a torch.nn.Module or a function)",
                          forward_func, exc=TypeError)
    x = _check_inputs(inputs)
    n, _, h, w = x.shape
    a = _check_attributions(attributions, x)
    tgt = _check_target(target, n)
    steps = check_int(steps, name="steps", func=_FUNC, low=1)
    batch_size = check_int(batch_size, name="batch_size", func=_FUNC, low=1)
    check_type(softmax, bool, name="softmax", func=_FUNC, expected="a bool (True or False)")
    base = _check_baseline(baseline, x)
    if additional_forward_args is None:
        args: tuple[Any, ...] = ()
    elif isinstance(additional_forward_args, tuple):
        args = additional_forward_args
    else:
        args = (additional_forward_args,)

    if tgt is None:  # each sample's predicted class on the unperturbed inputs
        _, tgt = _scores(forward_func, x, None, softmax, args)
    base = base.expand_as(x)

    # rank[i, p] = position of pixel p in sample i's order (0 = most important).
    order = torch.sort(a.flatten(1).to(x.device), dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=x.device).expand(n, -1))
    rank = rank.view(n, 1, h, w)
    counts = [round(k * h * w / steps) for k in range(steps + 1)]

    jobs = [(kind, k, i) for kind in (0, 1) for k in range(steps + 1) for i in range(n)]
    values = torch.empty(len(jobs))
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        idx = torch.tensor([i for _, _, i in chunk], device=x.device)
        cnt = torch.tensor([counts[k] for _, k, _ in chunk], device=x.device)
        kinds = torch.tensor([kind for kind, _, _ in chunk], device=x.device)
        chosen = rank[idx] < cnt.view(-1, 1, 1, 1)          # pixels removed / inserted
        keep_x = chosen ^ (kinds.view(-1, 1, 1, 1) == 0)     # deletion: keep the others
        batch = torch.where(keep_x, x[idx], base[idx])
        values[start:start + len(chunk)], _ = _scores(forward_func, batch, tgt[idx.cpu()],
                                                      softmax, args)
    curves = values.view(2, steps + 1, n).permute(0, 2, 1)
    fractions = torch.tensor(counts, dtype=torch.float32) / (h * w)
    auc = torch.trapezoid(curves, fractions, dim=-1)
    return DeletionInsertion(deletion=auc[0], insertion=auc[1], deletion_curve=curves[0],
                             insertion_curve=curves[1], fractions=fractions, target=tgt)
