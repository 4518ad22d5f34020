"""The scikit-learn side: to_patches, ImageClassifier, importance_map, plots.

The main oracle is scikit-learn itself: ``ImageClassifier`` over a model whose
logit is linear in the patch means must give exactly what scikit-learn's own
``LogisticRegression`` gives on the table of patch means, for every option of
``permutation_importance`` (same ``random_state`` = same permutations).
"""

from __future__ import annotations

import pickle

import matplotlib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, make_scorer
from sklearn.utils import estimator_checks
from sklearn.utils.validation import check_is_fitted

from captum_effnet.inspection import (
    ImageClassifier,
    from_patches,
    importance_map,
    patch_feature_names,
    patch_scores,
    plot_importances,
    to_patches,
)

matplotlib.use("Agg")

GRID = (2, 3)


class PatchMeanLogit(torch.nn.Module):
    """Two logits ``[0, d]`` with ``d = w . patch_means + b``: a logistic regression."""

    def __init__(self, w, b: float, grid=GRID):
        super().__init__()
        self.register_buffer("w", torch.as_tensor(w, dtype=torch.float32))
        self.b = float(b)
        self.grid = tuple(grid)

    def forward(self, x):
        n, _, h, w = x.shape
        rows, cols = self.grid
        means = x.mean(1).reshape(n, rows, h // rows, cols, w // cols).mean((2, 4))
        d = means.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(d), d], dim=1)


class Counting(torch.nn.Module):
    """Counts forward passes of the wrapped model."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


class BatchNormNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm2d(3)
        self.fc = torch.nn.Linear(3, 4)

    def forward(self, x):
        return self.fc(self.bn(x).mean((2, 3)))


W = np.array([20.0, -10.0, 5.0, 0.0, 2.0, 8.0])


def patch_means(images: torch.Tensor, grid=GRID) -> np.ndarray:
    n, _, h, w = images.shape
    rows, cols = grid
    m = images.double().mean(1).reshape(n, rows, h // rows, cols, w // cols).mean((2, 4))
    return m.reshape(n, -1).numpy()


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(40, 3, 8, 12, generator=g)
    M = patch_means(images)
    b = -float(M.mean(0) @ W)
    model = PatchMeanLogit(W, b).eval()
    X = to_patches(images, GRID)
    est = ImageClassifier(model, grid=GRID, batch_size=16).fit(X)
    lr = LogisticRegression().fit(M, (M @ W + b > 0).astype(int))
    lr.coef_, lr.intercept_ = W[None].copy(), np.array([b])
    rng = np.random.default_rng(0)
    y = lr.predict(M)
    flip = rng.random(len(y)) < 0.2  # labels that are not the model's own: a real score
    y[flip] = 1 - y[flip]
    return images, X, M, y, est, lr


# -- to_patches / from_patches -------------------------------------------------------

def test_to_patches_cells_are_the_image_blocks():
    images = torch.rand(3, 2, 6, 9)
    X = to_patches(images, (2, 3))
    assert X.shape == (3, 6) and X.dtype == object
    for i in range(3):
        for r in range(2):
            for c in range(3):
                cell = X[i, r * 3 + c]
                np.testing.assert_array_equal(cell, images[i, :, 3 * r:3 * r + 3, 3 * c:3 * c + 3])
                assert cell.dtype == np.float32 and not cell.flags.writeable
    assert torch.equal(from_patches(X, (2, 3)), images)


def test_to_patches_does_not_share_or_modify_the_users_images():
    images = np.random.default_rng(0).random((2, 3, 4, 4)).astype(np.float32)
    before = images.copy()
    X = to_patches(images, 1)  # a 1 x 1 grid: the patch is the whole image
    assert not np.shares_memory(X[0, 0], images)
    images[:] = 0
    np.testing.assert_array_equal(X[0, 0], before[0])


def test_to_patches_accepts_pil_images_with_and_without_transform():
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    rgb = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    pils = [Image.fromarray(a) for a in rgb]
    expected = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(from_patches(to_patches(pils, 2), 2), expected)
    X = to_patches(pils, 2, transform=lambda im: pil_to_tensor(im).float())
    assert torch.equal(from_patches(X, 2), expected * 255)


def test_permuting_a_column_moves_one_patch_between_images():
    images = torch.rand(4, 3, 8, 8)
    X = to_patches(images, 2)
    Xp = X.copy()
    Xp[:, 3] = X[[1, 2, 3, 0], 3]
    out = from_patches(Xp, 2)
    assert torch.equal(out[:, :, 4:, 4:], images[[1, 2, 3, 0], :, 4:, 4:])
    assert torch.equal(out[:, :, :4, :], images[:, :, :4, :])
    assert torch.equal(out[:, :, 4:, :4], images[:, :, 4:, :4])


def test_x_is_self_contained_and_copies_cost_pointers():
    images = torch.rand(10, 3, 32, 32)
    X = to_patches(images, 4)
    assert X.copy().nbytes == X.size * X.itemsize == 10 * 16 * 8  # pointers only
    pixels = images.numel() * 4
    blob = pickle.dumps(X)
    assert len(blob) > pixels  # the pixels travel with X: no hidden dataset reference
    assert torch.equal(from_patches(pickle.loads(blob), 4), images)


def test_patch_feature_names_and_patch_scores_follow_the_column_order():
    assert patch_feature_names((2, 2)).tolist() == [
        "patch_r0_c0", "patch_r0_c1", "patch_r1_c0", "patch_r1_c1"]
    attr = torch.arange(4.0).reshape(2, 2).repeat_interleave(3, 0).repeat_interleave(3, 1)
    attr = attr.expand(2, 3, 6, 6)
    assert patch_scores(attr, 2).tolist() == [[0.0, 1.0, 2.0, 3.0]] * 2


# -- the scikit-learn oracle --------------------------------------------------------

def test_predictions_equal_logistic_regression_on_patch_means(data):
    _, X, M, y, est, lr = data
    np.testing.assert_array_equal(est.predict(X), lr.predict(M))
    np.testing.assert_allclose(est.predict_proba(X), lr.predict_proba(M), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(est.decision_function(X), lr.decision_function(M),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(est.predict_log_proba(X), lr.predict_log_proba(M),
                               rtol=1e-5, atol=1e-5)
    assert est.score(X, y) == lr.score(M, y)
    np.testing.assert_array_equal(est.classes_, [0, 1])
    assert est.n_features_in_ == 6


def _mean_proba_scorer(estimator, X, y, sample_weight=None):
    proba = estimator.predict_proba(X)[np.arange(len(y)), y]
    return float(np.average(proba, weights=sample_weight))


@pytest.mark.parametrize(
    ("scoring", "weighted", "max_samples"),
    [
        (None, False, 1.0),
        ("accuracy", True, 1.0),
        ("neg_log_loss", False, 0.6),
        ("roc_auc", True, 25),
        (["accuracy", "neg_log_loss"], True, 0.75),
        ({"acc": make_scorer(accuracy_score), "p": _mean_proba_scorer}, False, 1.0),
        (_mean_proba_scorer, True, 30),
    ],
    ids=["default", "accuracy-weighted", "log-loss-max_samples", "roc_auc-int-max_samples",
         "multi-list", "multi-dict", "callable"],
)
def test_permutation_importance_equals_sklearn_on_patch_means(data, scoring, weighted,
                                                              max_samples):
    _, X, M, y, est, lr = data
    sw = np.random.default_rng(3).uniform(0.5, 2.0, len(y)) if weighted else None
    kw = dict(scoring=scoring, n_repeats=3, random_state=7, sample_weight=sw,
              max_samples=max_samples)
    ours = permutation_importance(est, X, y, **kw)
    ref = permutation_importance(lr, M, y, **kw)
    if "importances" in ours:
        ours, ref = {"score": ours}, {"score": ref}
    assert ours.keys() == ref.keys()
    for key in ref:
        np.testing.assert_allclose(ours[key].importances, ref[key].importances,
                                   rtol=1e-5, atol=1e-6, err_msg=key)
        assert np.abs(ref[key].importances_mean).max() > 0  # a real signal was compared


def test_n_jobs_2_gives_the_same_result_as_n_jobs_1(data):
    _, X, _, y, est, _ = data
    kw = dict(scoring=["accuracy", "neg_log_loss"], n_repeats=2, random_state=0)
    one = permutation_importance(est, X, y, n_jobs=1, **kw)
    two = permutation_importance(est, X, y, n_jobs=2, **kw)
    for key in one:
        np.testing.assert_array_equal(one[key].importances, two[key].importances)


def test_permutation_importance_leaves_x_and_the_model_alone(data):
    _, X, _, y, est, _ = data
    pointers, pixels = X.tobytes(), [c.copy() for c in X[0]]
    state = {k: v.clone() for k, v in est.model.state_dict().items()}
    permutation_importance(est, X, y, n_repeats=2, random_state=0)
    assert X.tobytes() == pointers
    for a, b in zip(X[0], pixels, strict=True):
        np.testing.assert_array_equal(a, b)
    for k, v in est.model.state_dict().items():
        assert torch.equal(v, state[k])


# -- estimator protocol -------------------------------------------------------------

def test_fit_does_not_train_and_never_modifies_the_users_model():
    torch.manual_seed(0)
    model = BatchNormNet().train()  # training mode: BatchNorm would update its stats
    state = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randn(8, 3, 4, 4) * 3 + 1
    X = to_patches(images, 2)
    est = ImageClassifier(model, grid=2).fit(X, [0, 1, 2, 3, 0, 1, 2, 3])
    est.predict_proba(X)
    assert model.training and est.model_ is not model and not est.model_.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    with torch.inference_mode():
        expected = model.eval()(images).argmax(1).numpy()
    np.testing.assert_array_equal(est.predict(X), expected)
    model.train()


def test_a_model_already_in_eval_mode_is_used_as_is(data):
    _, _, _, _, est, _ = data
    assert est.model_ is est.model
    assert est.device_ == torch.device("cpu")


def test_clone_gives_an_unfitted_copy_with_equal_params(data):
    _, X, _, _, est, _ = data
    twin = clone(est)
    assert twin.get_params().keys() == est.get_params().keys()
    assert twin.grid == est.grid and twin.batch_size == est.batch_size
    assert twin.model is not est.model  # clone deep-copies non-estimator params
    with pytest.raises(NotFittedError):
        check_is_fitted(twin)
    with pytest.raises(NotFittedError):
        twin.predict(X)
    np.testing.assert_array_equal(twin.fit(X).predict_proba(X), est.predict_proba(X))


def test_pickle_round_trip_predicts_the_same(data):
    _, X, _, _, est, _ = data
    est.predict(X)  # fills the prediction cache, which must not be pickled
    blob = pickle.dumps(est)
    again = pickle.loads(blob)
    check_is_fitted(again)
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(again.classes_, est.classes_)
    assert len(blob) < 20_000  # no images inside


def test_predict_then_predict_proba_costs_one_set_of_forward_passes():
    images = torch.rand(10, 3, 8, 12)
    model = Counting(PatchMeanLogit(W, -float(W.sum()) / 2)).eval()
    est = ImageClassifier(model, grid=GRID, batch_size=4).fit(to_patches(images, GRID))
    X = to_patches(images, GRID)
    model.calls = 0
    est.predict(X)
    assert model.calls == 3  # ceil(10 / 4) batches
    est.predict_proba(X)
    est.decision_function(X)
    assert model.calls == 3
    Xp = X.copy()
    Xp[:, 0] = X[::-1, 0]
    est.predict(Xp)
    assert model.calls == 6
    before = est.decision_function(Xp)
    assert model.calls == 6
    # New weights (an in-place update) invalidate the cache.
    with torch.no_grad():
        model.inner.w.mul_(2.0)
    after = est.decision_function(Xp)
    assert model.calls == 9
    assert not np.allclose(before, after)


def test_predicting_does_not_change_the_estimator_state(data):
    _, X, _, _, est, _ = data
    before = dict(est.__dict__)
    est.predict(X)
    est.predict_proba(X)
    est.decision_function(X)
    assert est.__dict__.keys() == before.keys()
    assert all(est.__dict__[k] is v for k, v in before.items())


def test_rows_are_predicted_independently_of_batching_and_order(data):
    _, X, _, _, est, _ = data
    full = est.predict_proba(X)
    one_by_one = ImageClassifier(est.model, grid=GRID, batch_size=1).fit(X)
    np.testing.assert_allclose(one_by_one.predict_proba(X), full, rtol=1e-6)
    order = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_allclose(est.predict_proba(X[order]), full[order], rtol=1e-6)
    np.testing.assert_allclose(est.predict_proba(X[5:9]), full[5:9], rtol=1e-6)


def test_classes_label_the_outputs_and_transform_runs_before_the_model():
    images = torch.rand(6, 3, 8, 8)
    X = to_patches(images, 2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3)).eval()
    est = ImageClassifier(model, grid=2, classes=["cat", "cup", "dog"],
                          transform=lambda x: (x - 0.5) / 0.25).fit(X, ["cat"] * 6)
    with torch.inference_mode():
        idx = model((images - 0.5) / 0.25).argmax(1).numpy()
    np.testing.assert_array_equal(est.predict(X), np.array(["cat", "cup", "dog"])[idx])


SKLEARN_API_CHECKS = [
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_no_attributes_set_in_init",
    "check_get_params_invariance",
    "check_set_params",
    "check_parameters_default_constructible",
    "check_mixin_order",
    "check_estimators_unfitted",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
]


@pytest.mark.parametrize("name", SKLEARN_API_CHECKS)
def test_sklearn_api_checks(name):
    # The data checks of sklearn.utils.estimator_checks feed numeric X and
    # expect fit to learn from it; this estimator reads patch tables and does
    # not train, so only the API checks apply (the data-side properties are
    # tested above against LogisticRegression).
    check = getattr(estimator_checks, name)
    check(type(ImageClassifier).__name__, ImageClassifier(PatchMeanLogit(W, 0.0), grid=GRID))


# -- importance_map and the plot ----------------------------------------------------

def test_importance_map_blocks_and_bilinear():
    heat = importance_map(np.arange(6.0), (2, 3), (4, 6))
    np.testing.assert_array_equal(heat, np.arange(6.0).reshape(2, 3).repeat(2, 0).repeat(2, 1))
    uneven = importance_map([1.0, 2.0], (1, 2), (1, 5))  # columns split 0-1 | 2-4
    np.testing.assert_array_equal(uneven, [[1.0, 1.0, 1.0, 2.0, 2.0]])
    smooth = importance_map(np.arange(6.0), (2, 3), (20, 30), mode="bilinear")
    assert smooth.shape == (20, 30)
    assert smooth.min() >= -1e-12 and smooth.max() <= 5.0 + 1e-12
    assert np.isclose(smooth[0, 0], 0.0) and np.isclose(smooth[-1, -1], 5.0)  # clamped edges
    assert np.all(np.diff(smooth, axis=1) >= -1e-12)  # monotone like the patch values


def test_importance_map_takes_a_permutation_importance_result(data):
    _, X, _, y, est, _ = data
    r = permutation_importance(est, X, y, n_repeats=2, random_state=0)
    heat = importance_map(r, GRID, (8, 12))
    np.testing.assert_array_equal(heat, importance_map(r.importances_mean, GRID, (8, 12)))
    np.testing.assert_array_equal(heat, importance_map(r.importances, GRID, (8, 12)))
    assert heat[0, 0] == r.importances_mean.max()  # patch 0 has the largest |weight|


def test_plot_shows_spread_over_repeats_sorted_by_mean():
    imp = np.array([[0.1, 0.3], [0.9, 1.1], [0.0, 0.0], [0.4, 0.6]])
    ax = plot_importances({"importances": imp}, grid=2)
    labels = [t.get_text() for t in ax.get_yticklabels()][::-1]
    assert labels == ["patch_r0_c1", "patch_r1_c1", "patch_r0_c0", "patch_r1_c0"]
    assert len(ax.artists) + len(ax.patches) + len(ax.lines) > 4  # boxes and whiskers drawn
    assert ax.figure is not None


# -- bad input ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("images", "grid", "exc", "match"),
    [
        (torch.rand(2, 3, 10, 10), 3, ValueError,
         r"'grid' parameter of to_patches must be a \(rows, cols\) pair dividing the image "
         r"size \(height, width\) = \(10, 10\).*Got \(3, 3\) instead"),
        (torch.rand(3, 10, 10), 2, ValueError, r"'images'.*images\[None\].*\(3, 10, 10\)"),
        (np.zeros((2, 4), dtype=object), 2, TypeError, r"'images'.*object-dtype"),
        (torch.rand(2, 3, 8, 8), 0, ValueError, r"'grid' parameter of to_patches.*Got 0"),
        (torch.rand(2, 3, 8, 8), "4", TypeError, r"'grid' parameter of to_patches.*Got '4'"),
        ([np.zeros((3, 8, 8)), np.zeros((3, 8, 4))], 2, ValueError, r"one shape"),
        ("image.png", 2, TypeError, r"'images'.*Got str"),
        (np.array(["a"] * 16).reshape(1, 1, 4, 4), 2, TypeError, r"real numbers"),
    ],
    ids=["grid-not-dividing", "no-batch-dim", "object-array", "grid-zero", "grid-str",
         "mixed-sizes", "path", "strings"],
)
def test_to_patches_rejects_bad_input(images, grid, exc, match):
    with pytest.raises(exc, match=match):
        to_patches(images, grid)


def test_estimator_rejects_bad_input(data):
    _, X, _, y, est, _ = data
    with pytest.raises(ValueError, match=r"'X' parameter of ImageClassifier.predict must "
                       r"have rows \* cols = 4 columns for grid=\(2, 2\).*\(40, 6\)"):
        ImageClassifier(lambda x: x.mean((2, 3))[:, :2], grid=2).fit(X[:, :4]).predict(X)
    with pytest.raises(ValueError, match=r"rows \* cols = 6 columns.*Got shape \(40, 4\)"):
        est.predict(X[:, :4])
    with pytest.raises(TypeError, match=r"'X' parameter of ImageClassifier.fit must be an "
                       r"object array of image patches.*float64"):
        ImageClassifier(est.model, grid=GRID).fit(np.zeros((4, 6)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"'y' parameter of ImageClassifier.fit must hold "
                       r"labels in classes_ \(0, 1; 2 in all.*Got unknown labels \[7\]"):
        ImageClassifier(est.model, grid=GRID).fit(X, np.where(y == 1, 7, 0))
    with pytest.raises(ValueError, match=r"'classes' parameter.*2 labels.*\(3,\)"):
        ImageClassifier(est.model, grid=GRID, classes=["a", "b", "c"]).fit(X)
    with pytest.raises(ValueError, match=r"Unknown label type"):
        ImageClassifier(est.model, grid=GRID).fit(X, np.linspace(0, 1, len(y)))
    with pytest.raises(ValueError, match=r"'batch_size' parameter of ImageClassifier must "
                       r"be an int in the range \[1, inf\). Got 0 instead"):
        ImageClassifier(est.model, grid=GRID, batch_size=0).fit(X)
    with pytest.raises(ValueError, match=r"'device' parameter of ImageClassifier.*'gpu0'"):
        ImageClassifier(est.model, grid=GRID, device="gpu0").fit(X)
    with pytest.raises(ValueError, match=r"'model' parameter of ImageClassifier must return "
                       r"a tensor of shape \(N, n_classes\)"):
        ImageClassifier(lambda x: x.mean(1), grid=GRID).fit(X)
    bad = X[:3].copy()
    bad[1, 2] = np.zeros((3, 2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"arrays of one shape"):
        est.predict(bad)
    with pytest.raises(NotFittedError):
        ImageClassifier(est.model, grid=GRID).predict(X)


def test_importance_map_and_plot_reject_bad_input():
    with pytest.raises(ValueError, match=r"'importances' parameter of importance_map must "
                       r"have one value per patch: shape \(4,\).*Got shape \(5,\)"):
        importance_map(np.zeros(5), 2, 8)
    with pytest.raises(ValueError, match=r"'mode' parameter of importance_map must be one "
                       r"of 'nearest', 'bilinear'.*'cubic'"):
        importance_map(np.zeros(4), 2, 8, mode="cubic")
    with pytest.raises(ValueError, match=r"'size' parameter of importance_map"):
        importance_map(np.zeros(4), 2, (0, 8))
    with pytest.raises(ValueError, match=r"'grid' parameter of plot_importances must have "
                       r"rows \* cols = 3"):
        plot_importances(np.zeros((3, 2)), grid=2)


def test_many_classes_log_loss_needs_the_labels():
    # scikit-learn's "neg_log_loss" infers the classes from y; with 10 model
    # outputs and fewer labels in y it refuses. The documented fix: a scorer
    # given the estimator's classes_.
    from sklearn.metrics import log_loss

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 10)).eval()
    images = torch.rand(8, 3, 4, 4)
    X = to_patches(images, 2)
    est = ImageClassifier(model, grid=2).fit(X)
    y = est.predict(X)
    assert len(np.unique(y)) < 10
    with pytest.raises(ValueError, match="labels"):
        permutation_importance(est, X, y, scoring="neg_log_loss", n_repeats=1)
    scorer = make_scorer(log_loss, greater_is_better=False, response_method="predict_proba",
                         labels=est.classes_)
    r = permutation_importance(est, X, y, scoring=scorer, n_repeats=2, random_state=0)
    assert np.isfinite(r.importances).all()
    with torch.inference_mode():
        logp = torch.log_softmax(model(images), 1).double().numpy()
    np.testing.assert_allclose(scorer(est, X, y), logp[np.arange(8), y].mean(), rtol=1e-6)
