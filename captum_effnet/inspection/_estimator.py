"""A scikit-learn classifier around a trained PyTorch image model."""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_array
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from .._validation import check_int, param_error
from ..attr._masks import check_grid
from ._patches import assemble, check_patch_table

__all__ = ["ImageClassifier"]

# Last predictions per estimator, kept outside the estimator's __dict__ so that
# predicting does not change its state (scikit-learn's rule) and so that pickles
# and clones never carry it.
_LAST_SCORES: weakref.WeakKeyDictionary[Any, tuple[Any, np.ndarray, np.ndarray]] = (
    weakref.WeakKeyDictionary()
)


class ImageClassifier(ClassifierMixin, BaseEstimator):
    """Scikit-learn classifier over image patches, wrapping a trained PyTorch model.

    ``X`` is a patch table from :func:`~captum_effnet.inspection.to_patches`:
    each row one image, each column one patch. The estimator reassembles the
    images, applies ``transform`` and runs the model in batches under
    :func:`torch.inference_mode`. This is what lets
    :func:`sklearn.inspection.permutation_importance` run unchanged on images,
    with patches as the features.

    ``fit`` does **not train** anything: it checks ``X`` and ``y``, records
    ``classes_`` and prepares the model for inference. The model must already
    be trained.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Maps a float tensor ``(N, C, H, W)`` to scores ``(N, n_classes)``
        (logits; ``predict_proba`` applies a softmax). It is never modified:
        if it is in training mode, or not on ``device``, ``fit`` uses an
        eval-mode copy on ``device`` instead (see ``model_``).
    grid : int or (int, int)
        ``(rows, cols)`` the patch table was made with.
    transform : callable, optional
        Applied to every reassembled batch ``(N, C, H, W)`` on ``device``
        before the model, e.g. ``torchvision.transforms.Normalize(mean, std)``.
        Must be picklable for ``n_jobs > 1`` and :mod:`pickle`.
    classes : array-like of shape (n_classes,), optional
        Label of each model output, in output order (e.g. ImageNet class
        names). Default: ``0 .. n_classes - 1``.
    batch_size : int, default=64
        Images per forward pass.
    device : str or torch.device, optional
        Where the model runs. Default: the device of the model's parameters
        (CPU for a model without parameters).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in model output order.
    n_features_in_ : int
        ``rows * cols``, the number of patches (columns of ``X``).
    feature_names_in_ : ndarray of str
        Column names, only when ``fit`` was given a DataFrame with string
        column names.
    model_ : torch.nn.Module or callable
        The model used for predictions: ``model`` itself when it is already in
        eval mode on ``device``, otherwise an eval-mode copy on ``device``.
    device_ : torch.device
        Device of the computations.

    See Also
    --------
    captum_effnet.inspection.to_patches : makes ``X``.
    sklearn.inspection.permutation_importance : patch importance with this estimator.

    Notes
    -----
    Predictions are cached for the last ``X`` seen (identified by its patch
    objects, which are read-only, and by the model's parameter versions), so
    ``predict`` followed by ``predict_proba`` on the same ``X`` -- as a
    multi-metric scorer does -- costs one set of forward passes.

    Examples
    --------
    >>> import torch
    >>> from sklearn.inspection import permutation_importance
    >>> from captum_effnet.inspection import ImageClassifier, to_patches
    >>> class TopLeft(torch.nn.Module):  # the class depends on the top-left patch only
    ...     def forward(self, x):
    ...         m = x[:, :, :4, :4].mean(dim=(1, 2, 3)) - 0.5
    ...         return torch.stack([-m, m], dim=1)
    >>> _ = torch.manual_seed(0)
    >>> images = torch.rand(20, 3, 8, 8)
    >>> X = to_patches(images, grid=(2, 2))
    >>> est = ImageClassifier(TopLeft(), grid=(2, 2), batch_size=8).fit(X)
    >>> y = est.predict(X)
    >>> est.score(X, y)
    1.0
    >>> r = permutation_importance(est, X, y, n_repeats=3, random_state=0)
    >>> int(r.importances_mean.argmax()), r.importances_mean[1:].tolist()
    (0, [0.0, 0.0, 0.0])
    """

    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        *,
        grid: int | tuple[int, int],
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        classes: Sequence[Any] | np.ndarray | None = None,
        batch_size: int = 64,
        device: str | torch.device | None = None,
    ) -> None:
        self.model = model
        self.grid = grid
        self.transform = transform
        self.classes = classes
        self.batch_size = batch_size
        self.device = device

    # -- scikit-learn protocol -------------------------------------------------------

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.requires_fit = True
        tags.non_deterministic = False
        return tags

    def fit(self, X: Any, y: Any = None) -> ImageClassifier:
        """Check ``X`` and ``y`` and record ``classes_``; no training happens.

        Runs the model on the first image once to learn the number of outputs.

        Parameters
        ----------
        X : ndarray of object, shape (n_samples, rows * cols)
            Patch table from :func:`~captum_effnet.inspection.to_patches`.
        y : array-like of shape (n_samples,), optional
            Labels; each must be one of ``classes_``.

        Returns
        -------
        self : ImageClassifier
        """
        func = "ImageClassifier.fit"
        if not callable(self.model):
            raise param_error("model", "ImageClassifier", "a torch.nn.Module or a callable",
                              self.model, exc=TypeError)
        grid = check_grid(self.grid, func="ImageClassifier")
        if self.transform is not None and not callable(self.transform):
            raise param_error("transform", "ImageClassifier", "a callable or None",
                              self.transform, exc=TypeError)
        check_int(self.batch_size, name="batch_size", func="ImageClassifier", low=1)
        device = _resolve_device(self.model, self.device)

        X = self._validate_X(X, grid, func=func, reset=True)
        self.device_ = device
        self.model_ = _inference_model(self.model, device)
        self._grid = grid
        _LAST_SCORES.pop(self, None)
        n_outputs = self._forward(X[:1]).shape[1]

        if self.classes is None:
            classes = np.arange(n_outputs)
        else:
            classes = np.asarray(self.classes)
            if classes.ndim != 1 or len(classes) != n_outputs:
                raise ValueError(
                    f"The 'classes' parameter of ImageClassifier must be a 1-D sequence "
                    f"of {n_outputs} labels, one per model output. Got an array of shape "
                    f"{classes.shape} instead."
                )
            values, counts = np.unique(classes, return_counts=True)
            if (counts > 1).any():
                raise ValueError(
                    "The 'classes' parameter of ImageClassifier must hold distinct labels. "
                    f"Got duplicates {values[counts > 1][:5].tolist()} instead.")
        if y is not None:
            y_arr = check_array(y, ensure_2d=False, dtype=None, input_name="y")
            if y_arr.ndim != 1 or y_arr.shape[0] != X.shape[0]:
                raise ValueError(
                    f"The 'y' parameter of {func} must be a 1-D array of {X.shape[0]} labels "
                    f"(one per row of X). Got shape {y_arr.shape} instead."
                )
            check_classification_targets(y_arr)
            try:
                known = np.isin(y_arr, classes)
            except TypeError:
                known = np.zeros(y_arr.shape, dtype=bool)
            if not known.all():
                bad = list(dict.fromkeys(y_arr[~known].tolist()))[:5]
                shown = classes[:10].tolist()
                more = ", ..." if len(classes) > 10 else ""
                raise ValueError(
                    f"The 'y' parameter of {func} must hold labels in classes_ "
                    f"({', '.join(map(repr, shown))}{more}; {len(classes)} in all, set by "
                    f"the 'classes' parameter). Got unknown labels {bad} instead."
                )
        self.classes_ = classes
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Model outputs (logits).

        Returns
        -------
        ndarray of shape (n_samples, n_classes), or (n_samples,) for two classes
            For two classes, scikit-learn's convention: ``logit[1] - logit[0]``,
            positive for ``classes_[1]``.
        """
        scores = self._scores(X, func="ImageClassifier.decision_function")
        if scores.shape[1] == 2:
            return scores[:, 1] - scores[:, 0]
        return scores

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities: the softmax of the model outputs (in float64).

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        scores = self._scores(X, func="ImageClassifier.predict_proba")
        scores = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithm of :meth:`predict_proba` (log-softmax of the outputs)."""
        scores = self._scores(X, func="ImageClassifier.predict_log_proba")
        scores = scores - scores.max(axis=1, keepdims=True)
        return scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels: ``classes_[argmax(outputs)]``.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        scores = self._scores(X, func="ImageClassifier.predict")
        return self.classes_[scores.argmax(axis=1)]

    # -- internals ------------------------------------------------------------------

    def _validate_X(self, X: Any, grid: tuple[int, int], *, func: str, reset: bool
                    ) -> np.ndarray:
        table = check_patch_table(X, grid, func=func)
        # Feature names (DataFrame columns) and n_features_in_, scikit-learn's way.
        validate_data(self, X, reset=reset, skip_check_array=True)
        return table

    def _scores(self, X: Any, *, func: str) -> np.ndarray:
        check_is_fitted(self)
        X = self._validate_X(X, self._grid, func=func, reset=False)
        key = _cache_key(X, self.model_)
        cache = _LAST_SCORES.get(self)
        if key is not None and cache is not None and cache[0] == key:
            return cache[2].copy()
        scores = self._forward(X).astype(np.float64)
        if key is not None:
            # X.copy() copies pointers; it keeps the patch objects (the key) alive.
            _LAST_SCORES[self] = (key, X.copy(), scores.copy())
        return scores

    def _forward(self, X: np.ndarray) -> np.ndarray:
        outs = []
        with torch.inference_mode():
            for start in range(0, X.shape[0], self.batch_size):
                batch = assemble(X[start:start + self.batch_size], self._grid,
                                 func="ImageClassifier")
                if not bool(torch.isfinite(batch).all()):
                    raise ValueError(
                        "The 'X' parameter of ImageClassifier must hold finite patches (no "
                        "NaN or inf): the scores computed from them would be NaN. Got "
                        f"{int((~torch.isfinite(batch)).sum())} non-finite pixel value(s) in "
                        f"rows {start}..{start + batch.shape[0] - 1} instead."
                    )
                batch = batch.to(self.device_)
                if self.transform is not None:
                    batch = self.transform(batch)
                out = self.model_(batch)
                if not isinstance(out, torch.Tensor) or out.dim() != 2 \
                        or out.shape[0] != batch.shape[0]:
                    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out)
                    raise ValueError(
                        f"The 'model' parameter of ImageClassifier must return a tensor of "
                        f"shape (N, n_classes) for N images. Got {shape} for "
                        f"{batch.shape[0]} images instead."
                    )
                if not bool(torch.isfinite(out).all()):
                    raise ValueError(
                        "The 'model' parameter of ImageClassifier must return finite "
                        "scores. Got NaN or inf in its output for rows "
                        f"{start}..{start + batch.shape[0] - 1} instead."
                    )
                outs.append(out.detach().float().cpu())
        return torch.cat(outs).numpy()


def _resolve_device(model: Any, device: Any) -> torch.device:
    if device is not None:
        try:
            return torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise param_error("device", "ImageClassifier",
                              "None, a torch.device or a device string such as 'cpu' or "
                              "'cuda:0'", device,
                              exc=TypeError if not isinstance(device, str) else ValueError
                              ) from exc
    if isinstance(model, nn.Module):
        for t in chain(model.parameters(), model.buffers()):
            return t.device
    return torch.device("cpu")


def _inference_model(model: Any, device: torch.device) -> Any:
    if not isinstance(model, nn.Module):
        return model
    training = any(m.training for m in model.modules())
    elsewhere = any(t.device != device for t in chain(model.parameters(), model.buffers()))
    if training or elsewhere:
        return copy.deepcopy(model).to(device).eval()
    return model


def _cache_key(X: np.ndarray, model: Any) -> tuple[Any, ...] | None:
    """Identity of X's patches and of the model's weights, or None if not cacheable."""
    for cell in X.flat:
        if not isinstance(cell, np.ndarray) or cell.flags.writeable:
            return None  # only read-only patches (from to_patches) are safe to cache
    versions: list[int] = []
    if isinstance(model, nn.Module):
        # In-place updates (optimiser steps, load_state_dict, ...) bump _version;
        # one pass over the modules (about 0.5 ms for an EfficientNet).
        for module in model.modules():
            for t in chain(module._parameters.values(), module._buffers.values()):
                if t is not None:
                    versions.append(id(t))
                    versions.append(t._version)
    return (X.shape, X.tobytes(), id(model), tuple(versions))
