"""Permutation attribution over image patches, as a Captum attribution.

:class:`PatchPermutation` is Captum's :class:`~captum.attr.FeaturePermutation`
with the three things images need: the feature mask is built for you (a grid of
patches, or SLIC superpixels), several permutations are averaged
(``n_repeats``), and a batch of one is permuted against a background set that
you give, or refused with a :class:`ValueError` -- never answered with the
silent zeros that ``FeaturePermutation`` returns for a batch of one.

Numbers and signs
-----------------
For sample ``i``, patch ``j`` and one permutation ``pi`` the attribution is
Captum's ablation difference::

    a[i, j] = f(x_i)[t_i] - f(x_i with patch j taken from x_pi(i))[t_i]

averaged over ``n_repeats`` permutations, where ``f`` is ``forward_func`` and
``t_i`` the target. Positive means "the sample's own patch supports the
target output more than other images' patches at that place"; negative
means the patch counts against it. Every element of a patch holds that value.

scikit-learn's :func:`~sklearn.inspection.permutation_importance` (with
:class:`captum_effnet.inspection.ImageClassifier`) reports instead, per patch,
one *dataset* number: ``score(X) - score(X with column j shuffled)``, where
the score is a metric over all rows (accuracy, log-loss, ...). Both are
"bigger = more important" and both rank the same patches on top, but the
scales differ: a per-sample output difference (in logits, if ``f`` returns
logits) against a drop in a dataset metric. With a scorer that averages the
target output, ``score = mean_i f(x_i)[t_i]``, the scikit-learn importance is
the batch mean of the Captum attribution for the same permutation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from numbers import Integral
from typing import Any, cast

import torch
from captum._utils.typing import TargetType
from captum.attr import FeaturePermutation, PerturbationAttribution
from captum.log import log_usage
from torch import Tensor

from .._validation import check_int, describe, param_error
from ._grad_cam import _targets
from ._layers import (
    _check_channels,
    _check_finite,
    _check_finite_result,
    _eval_mode,
    _model_of,
)
from ._masks import check_divides, check_grid, patch_mask, superpixel_mask

__all__ = ["BUILTIN_ATTRIBUTIONS", "PatchPermutation"]

_FUNC = "PatchPermutation.attribute"
_DEFAULT_GRID = (4, 4)


def _permute_within_batch(x: Tensor, mask: Tensor) -> Tensor:
    """Captum's ``_permute_feature`` (a non-identity ``torch.randperm`` of the
    batch), with :func:`torch.where` instead of two multiply-adds: faster, and
    exact for non-finite inputs."""
    n = x.size(0)
    perm = torch.randperm(n)
    identity = torch.arange(n)
    while bool((perm == identity).all()):
        perm = torch.randperm(n)
    return torch.where(mask, x[perm.to(x.device)], x)


class _DrawFromBackground:
    """Replace the masked feature of every sample by that of a random background image."""

    def __init__(self, background: Tensor) -> None:
        self.background = background

    def __call__(self, x: Tensor, mask: Tensor) -> Tensor:
        idx = torch.randint(self.background.shape[0], (x.size(0),))
        return torch.where(mask, self.background[idx.to(self.background.device)], x)


class _ReuseInitialEval:
    """Forward wrapper that evaluates the unperturbed input once for all repeats.

    ``FeatureAblation.attribute`` starts every call with a forward pass on the
    unchanged inputs; for repeats after the first, that output is returned
    from memory, so ``n_repeats`` repeats cost ``1 + n_features * n_repeats``
    forward passes (what scikit-learn's ``permutation_importance`` needs)
    rather than ``(1 + n_features) * n_repeats``.
    """

    def __init__(self, forward_func: Callable[..., Any],
                 check: Callable[[Any], None] | None = None) -> None:
        self.forward_func = forward_func
        self.check = check  # called once on the unperturbed output (target checks)
        self._initial: Any = None
        self._next_is_initial = False

    def start_repeat(self) -> None:
        self._next_is_initial = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._next_is_initial:
            self._next_is_initial = False
            if self._initial is not None:
                return self._initial.clone()
            out = self.forward_func(*args, **kwargs)
            if self.check is not None:
                self.check(out)
            if isinstance(out, Tensor):
                self._initial = out.detach().clone()
            return out
        return self.forward_func(*args, **kwargs)


class PatchPermutation(PerturbationAttribution):
    r"""Permutation attribution with image patches (or superpixels) as the features.

    Built on :class:`captum.attr.FeaturePermutation`: each patch is swapped,
    as a whole and across all channels, with the same patch of another image,
    and the change in the model output is the patch's attribution. Registered
    as ``"permutation"`` (``captum_effnet.get_attribution("permutation")``).

    Parameters
    ----------
    forward_func : callable or torch.nn.Module
        The model or any function of the inputs returning a tensor of shape
        ``(N, ...)`` (e.g. logits ``(N, n_classes)``) or one scalar per batch.
        A module (or its bound ``forward``) runs in eval mode for the call and
        every submodule's train/eval flag is restored afterwards, as in
        :class:`~captum_effnet.attr.GradCam`: in train mode batch-norm would mix
        the samples and update its running statistics, and dropout would make
        the scores random.

    See Also
    --------
    captum.attr.FeaturePermutation : the Captum method this wraps.
    sklearn.inspection.permutation_importance : the dataset-level counterpart,
        used with :class:`captum_effnet.inspection.ImageClassifier`.

    Notes
    -----
    Sign and scale (see the module docstring for the comparison with
    scikit-learn): the attribution of patch ``j`` of sample ``i`` is
    ``f(x_i)[t_i] - f(x_i with patch j permuted)[t_i]``, averaged over
    ``n_repeats`` permutations. Positive values mean the patch supports the
    target output.

    Examples
    --------
    >>> import torch
    >>> from captum_effnet.attr import PatchPermutation
    >>> class TopLeft(torch.nn.Module):  # logits depend on the top-left patch only
    ...     def forward(self, x):
    ...         m = x[:, :, :4, :4].mean(dim=(1, 2, 3))
    ...         return torch.stack([-m, m], dim=1)
    >>> _ = torch.manual_seed(0)
    >>> images = torch.rand(6, 3, 8, 8)
    >>> attr = PatchPermutation(TopLeft()).attribute(images, target=1, grid=(2, 2))
    >>> attr.shape
    torch.Size([6, 3, 8, 8])
    >>> bool(attr[:, :, :4, :4].abs().sum() > 0), bool((attr[:, :, 4:, :] == 0).all())
    (True, True)

    A single image is permuted against a background set:

    >>> one = PatchPermutation(TopLeft()).attribute(
    ...     images[:1], target=1, grid=2, n_repeats=4, background=images[1:])
    >>> one.shape
    torch.Size([1, 3, 8, 8])
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        if not callable(forward_func):
            raise param_error("forward_func", "PatchPermutation",
                              "a callable (a torch.nn.Module or a function)",
                              forward_func, exc=TypeError)
        PerturbationAttribution.__init__(self, forward_func)

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Tensor,
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        grid: int | tuple[int, int] | None = None,
        feature_mask: Tensor | None = None,
        superpixels: int | None = None,
        n_repeats: int = 1,
        perturbations_per_eval: int = 1,
        show_progress: bool = False,
        background: Tensor | None = None,
    ) -> Tensor:
        r"""Attribute the output to image patches by permuting them.

        Parameters
        ----------
        inputs : Tensor of shape (N, C, H, W)
            The images, already preprocessed for ``forward_func``.
        target : int, tuple, Tensor or list, optional
            Output indices to explain, as in Captum (one for all samples or one
            per sample). ``None`` when the function returns one value per sample.
        additional_forward_args : Any, optional
            Extra arguments passed to ``forward_func`` after the inputs.
        grid : int or (int, int), optional
            Patches per column and per row, ``(rows, cols)``; it must divide
            ``(H, W)``. The default is a 4 x 4 grid when neither
            ``feature_mask`` nor ``superpixels`` is given.
        feature_mask : Tensor, optional
            Your own Captum feature mask: integers ``0..K-1``, first dimension 1,
            broadcastable to ``inputs``. Exclusive with ``grid`` and ``superpixels``.
        superpixels : int, optional
            Use about this many SLIC superpixels of ``inputs[0]`` as the features
            (needs scikit-image; see
            :func:`~captum_effnet.attr._masks.superpixel_mask`). Best with a batch
            of one and a ``background``.
        n_repeats : int, default=1
            Number of permutations averaged. Memory does not grow with it; the
            unperturbed output is computed once, so the cost is
            ``1 + K * n_repeats`` forward passes of ``N`` images.
        perturbations_per_eval : int, default=1
            Features permuted per forward pass (Captum's meaning): each pass sees
            ``perturbations_per_eval * N`` images.
        show_progress : bool, default=False
            Captum's progress display.
        background : Tensor of shape (M, C, H, W), optional
            Images to take replacement patches from. When given, every sample's
            patch is replaced by the same patch of a background image drawn
            uniformly at random (with replacement), for any batch size; the
            background images themselves are not attributed. Required when
            ``N == 1``: a batch of one has nothing to permute with.

        Returns
        -------
        Tensor of shape (N, C, H, W)
            Mean attribution over the repeats; every element of a patch holds
            the patch's value. Use :func:`captum_effnet.inspection.patch_scores`
            for an ``(N, rows * cols)`` table in :func:`~captum_effnet.inspection.to_patches`'
            column order.

        Raises
        ------
        ValueError
            Batch of one without ``background``; grid not dividing the image;
            several of ``grid``, ``feature_mask``, ``superpixels``; shapes that
            do not match; inputs holding NaN/inf; a target the output cannot
            be indexed with; a forward function giving NaN/inf (never a silent
            NaN map).
        TypeError
            Inputs that are not one tensor, or not of the model's dtype; wrong
            parameter types.
        """
        inputs = _check_inputs(inputs)
        _check_channels(_model_of(self.forward_func), (inputs,), _FUNC)
        n = inputs.shape[0]
        n_repeats = check_int(n_repeats, name="n_repeats", func=_FUNC, low=1)
        perturbations_per_eval = check_int(perturbations_per_eval,
                                           name="perturbations_per_eval", func=_FUNC, low=1)
        mask = _resolve_mask(inputs, grid, feature_mask, superpixels)

        if background is not None:
            background = _check_background(background, inputs)
            perm_func: Callable[[Tensor, Tensor], Tensor] = _DrawFromBackground(background)
        elif n < 2:
            raise param_error(
                "background", _FUNC,
                "a tensor of images (M, C, H, W) to take replacement patches from when "
                "inputs holds a single image (a batch of one has nothing to permute with; "
                "pass background=other_images, or a batch of two or more images)",
                background,
            )
        else:
            perm_func = _permute_within_batch

        forward = _ReuseInitialEval(self.forward_func,
                                    functools.partial(_check_target, target=target, n=n))
        method = FeaturePermutation(forward, perm_func=perm_func)
        if background is not None:
            # FeaturePermutation skips (returns zeros for) batches smaller than 2;
            # with a background the batch size does not matter.
            method._min_examples_per_batch_grouped = None

        total: Tensor | None = None
        # Eval mode for the call (flags restored after): in train mode batch-norm
        # would mix the samples and update its running statistics, dropout would
        # make every forward random.
        with _eval_mode(_model_of(self.forward_func)):
            for _ in range(n_repeats):
                forward.start_repeat()
                attr = method.attribute(
                    inputs,
                    target=target,
                    additional_forward_args=additional_forward_args,
                    feature_mask=mask,
                    perturbations_per_eval=perturbations_per_eval,
                    show_progress=show_progress,
                )
                total = attr if total is None else total.add_(attr)
        result = cast(Tensor, total)
        _check_finite_result(result, "PatchPermutation")
        return result.div_(n_repeats) if n_repeats > 1 else result


def _check_target(out: Any, target: Any, n: int) -> None:
    """Refuse a target the output cannot be indexed with, before Captum indexes it."""
    if target is None or not isinstance(out, Tensor) or out.ndim < 2:
        return
    _, multi = _targets(out, target, None, n, _FUNC)
    if multi:
        raise param_error("target", _FUNC,
                          "one class per sample (an int, a list or 1-D tensor of ints, or "
                          "an index tuple); several classes per sample are not supported",
                          target)


def _check_inputs(inputs: Any) -> Tensor:
    if not isinstance(inputs, Tensor):
        raise param_error("inputs", _FUNC,
                          "one torch.Tensor of images of shape (N, C, H, W) (tuples of "
                          "inputs are not supported)", inputs, exc=TypeError)
    if inputs.dim() != 4 or inputs.shape[0] < 1 or inputs.is_complex():
        raise param_error("inputs", _FUNC,
                          "a real tensor of images of shape (N, C, H, W) with N >= 1 "
                          "(add a batch dimension to one image: inputs[None])",
                          f"a tensor of shape {tuple(inputs.shape)}")
    _check_finite(inputs, "inputs", _FUNC)
    return inputs


def _check_background(background: Any, inputs: Tensor) -> Tensor:
    if not isinstance(background, Tensor):
        raise param_error("background", _FUNC,
                          "a torch.Tensor of images of shape (M, C, H, W)", background,
                          exc=TypeError)
    if background.dim() != 4 or background.shape[0] < 1 or background.shape[1:] != inputs.shape[1:]:
        raise param_error(
            "background", _FUNC,
            f"a tensor of shape (M, {', '.join(map(str, inputs.shape[1:]))}) with M >= 1, "
            f"matching the inputs' image shape",
            f"a tensor of shape {tuple(background.shape)}")
    return background.to(device=inputs.device, dtype=inputs.dtype)


def _resolve_mask(inputs: Tensor, grid: Any, feature_mask: Any, superpixels: Any) -> Tensor:
    given = [name for name, v in (("grid", grid), ("feature_mask", feature_mask),
                                  ("superpixels", superpixels)) if v is not None]
    if len(given) > 1:
        raise ValueError(
            f"The {given[0]!r} and {given[1]!r} parameters of {_FUNC} are alternatives: "
            "give at most one of 'grid', 'feature_mask', 'superpixels'. Got "
            + " and ".join(f"{name}={describe(v)}" for name, v in
                           (("grid", grid), ("feature_mask", feature_mask),
                            ("superpixels", superpixels)) if v is not None)
            + " instead.")
    height, width = inputs.shape[-2:]
    if feature_mask is not None:
        return _check_feature_mask(feature_mask, inputs)
    if superpixels is not None:
        if isinstance(superpixels, bool) or not isinstance(superpixels, Integral):
            raise param_error("superpixels", _FUNC, "a positive int (number of SLIC "
                              "segments) or None", superpixels, exc=TypeError)
        check_int(superpixels, name="superpixels", func=_FUNC, low=1)
        return superpixel_mask(inputs[0], int(superpixels), device=inputs.device)
    rows_cols = _DEFAULT_GRID if grid is None else check_grid(grid, func=_FUNC)
    check_divides(int(height), int(width), rows_cols, func=_FUNC)
    return patch_mask((int(height), int(width)), rows_cols, device=inputs.device)


def _check_feature_mask(mask: Any, inputs: Tensor) -> Tensor:
    if not isinstance(mask, Tensor) or mask.is_floating_point() or mask.is_complex() \
            or mask.dtype == torch.bool:
        raise param_error("feature_mask", _FUNC, "an integer torch.Tensor", mask,
                          exc=TypeError)
    try:
        torch.broadcast_shapes(mask.shape, inputs.shape)
        ok = mask.dim() == inputs.dim() and mask.shape[0] == 1
    except RuntimeError:
        ok = False
    if not ok:
        raise param_error("feature_mask", _FUNC,
                          f"a tensor of shape (1, C or 1, H or 1, W or 1) broadcastable to "
                          f"the inputs' shape {tuple(inputs.shape)}",
                          f"a tensor of shape {tuple(mask.shape)}")
    if mask.numel() and int(mask.min()) < 0:
        raise param_error("feature_mask", _FUNC, "non-negative feature numbers 0..K-1",
                          f"a mask with minimum {int(mask.min())}")
    return mask.to(device=inputs.device, dtype=torch.int64)


BUILTIN_ATTRIBUTIONS: dict[str, type] = {"permutation": PatchPermutation}
