"""Patch permutation on both paths (Captum and scikit-learn), against oracles.

Oracles: a planted model whose logits depend on one patch; closed forms for a
model linear in the patch means; Captum's own FeaturePermutation with the same
mask and seed; scikit-image's SLIC for superpixels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from captum.attr import FeaturePermutation, PerturbationAttribution
from sklearn.inspection import permutation_importance

import captum_effnet as ce
from captum_effnet.attr import PatchPermutation
from captum_effnet.attr._masks import mask_values, patch_mask, superpixel_mask
from captum_effnet.attr._permutation import BUILTIN_ATTRIBUTIONS
from captum_effnet.inspection import ImageClassifier, patch_scores, to_patches

PLANTED = 5  # patch (1, 2) of a 3 x 3 grid on 12 x 12 images


class Planted(torch.nn.Module):
    """Three logits from patch (1, 2) only, non-linear in its pixels."""

    def forward(self, x):
        m = x[:, :, 4:8, 8:12].mean((1, 2, 3))
        centres = torch.tensor([0.3, 0.5, 0.7], dtype=x.dtype)
        return -100.0 * (m[:, None] - centres) ** 2 + x[:, :1, 4:8, 8:12].std((2, 3))


class PatchMeanLinear(torch.nn.Module):
    """``d = w . patch_means + b``; logits ``[-d/2, d/2]`` or ``d`` itself (scalar=True)."""

    def __init__(self, w, b=0.0, grid=(2, 2), scalar=False):
        super().__init__()
        self.register_buffer("w", torch.as_tensor(w, dtype=torch.float32))
        self.b, self.grid, self.scalar = float(b), tuple(grid), scalar

    def forward(self, x):
        n, _, h, w = x.shape
        rows, cols = self.grid
        means = x.mean(1).reshape(n, rows, h // rows, cols, w // cols).mean((2, 4))
        d = means.flatten(1) @ self.w + self.b
        return d if self.scalar else torch.stack([-d / 2, d / 2], dim=1)


def patch_means(images, grid):
    n, _, h, w = images.shape
    rows, cols = grid
    m = images.double().mean(1).reshape(n, rows, h // rows, cols, w // cols).mean((2, 4))
    return m.reshape(n, -1).numpy()


def planted_images(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 12, 12, generator=g)
    level = torch.rand(n, generator=g) * 0.6 + 0.2  # spread the planted patch over classes
    images[:, :, 4:8, 8:12] = level[:, None, None, None] + 0.1 * torch.rand(n, 3, 4, 4,
                                                                          generator=g)
    return images


# -- registration and the Captum contract -------------------------------------------

def test_registered_as_permutation():
    assert {"permutation": PatchPermutation} == BUILTIN_ATTRIBUTIONS
    assert ce.get_attribution("permutation") is PatchPermutation
    assert issubclass(PatchPermutation, PerturbationAttribution)


def test_equals_captums_feature_permutation_with_the_same_mask_and_seed():
    model = Planted()
    images = planted_images(8)
    target = model(images).argmax(1)
    mask = patch_mask(12, 3)
    for ppe in (1, 4):
        torch.manual_seed(123)
        theirs = FeaturePermutation(model).attribute(images, target=target, feature_mask=mask,
                                                     perturbations_per_eval=ppe)
        torch.manual_seed(123)
        ours = PatchPermutation(model).attribute(images, target=target, grid=3,
                                                 perturbations_per_eval=ppe)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
        assert theirs.abs().sum() > 0


def test_repeats_reuse_the_unperturbed_forward_pass():
    calls = []

    def forward(x):
        calls.append(x.shape[0])
        return Planted()(x)

    images = planted_images(6)
    PatchPermutation(forward).attribute(images, target=0, grid=3, n_repeats=4)
    assert len(calls) == 1 + 9 * 4 and sum(calls) == 6 * (1 + 9 * 4)


# -- planted signal: both paths --------------------------------------------------------

def test_planted_patch_ranks_first_and_others_are_exactly_zero_captum():
    model = Planted()
    images = planted_images()
    target = model(images).argmax(1)
    assert len(set(target.tolist())) == 3
    torch.manual_seed(0)
    attr = PatchPermutation(model).attribute(images, target=target, grid=3, n_repeats=3)
    scores = patch_scores(attr, 3)
    others = [j for j in range(9) if j != PLANTED]
    assert torch.count_nonzero(scores[:, others]) == 0
    assert int(scores.mean(0).argmax()) == PLANTED and scores[:, PLANTED].mean() > 0


def test_planted_patch_ranks_first_and_others_are_exactly_zero_sklearn():
    model = Planted()
    images = planted_images()
    X = to_patches(images, 3)
    est = ImageClassifier(model, grid=3).fit(X)
    y = est.predict(X)
    for scoring in ("accuracy", "neg_log_loss"):
        r = permutation_importance(est, X, y, scoring=scoring, n_repeats=3, random_state=0)
        others = np.delete(r.importances, PLANTED, axis=0)
        assert (others == 0.0).all(), scoring
        assert r.importances_mean.argmax() == PLANTED and r.importances_mean[PLANTED] > 0


def test_planted_batch_of_one_against_a_background():
    model = Planted()
    images = planted_images(9)
    target = int(model(images[:1]).argmax(1))
    torch.manual_seed(0)
    attr = PatchPermutation(model).attribute(images[:1], target=target, grid=3, n_repeats=8,
                                             background=images[1:])
    scores = patch_scores(attr, 3)[0]
    assert scores[PLANTED] > 0  # not Captum's silent zeros
    assert torch.count_nonzero(scores) == 1


# -- closed forms ---------------------------------------------------------------------

W4 = np.array([3.0, -2.0, 1.0, 0.0])


def test_closed_form_against_a_background_and_convergence():
    # a[i, j] = w_j (m_ij - m_bj) for a uniformly drawn background image b, so
    # E a[i, j] = w_j (m_ij - mean_b m_bj) and sd = |w_j| sd_b(m_bj) per draw.
    # The background is darker than the images, so permuting within the batch
    # instead would be caught (a bias of about w_j / 4).
    g = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 8, 8, generator=g)
    background = torch.rand(5, 3, 8, 8, generator=g) * 0.5
    model = PatchMeanLinear(W4, scalar=True)
    m, mb = patch_means(images, (2, 2)), patch_means(background, (2, 2))
    expected = W4 * (m - mb.mean(0))
    sd = np.abs(W4) * mb.std(0)
    errors = {}
    for reps in (4, 300):
        torch.manual_seed(reps)
        attr = PatchPermutation(model).attribute(images, grid=2, n_repeats=reps,
                                                 background=background)
        est = patch_scores(attr, 2).double().numpy()
        assert np.all(np.abs(est - expected) <= 4 * sd / math.sqrt(reps) + 1e-5), reps
        errors[reps] = np.abs(est - expected).max()
    assert errors[300] < errors[4] / 3


def test_closed_form_within_the_batch():
    # A non-identity uniform permutation (Captum's) gives
    # E a[i, j] = n!/(n!-1) w_j (m_ij - mean_k m_kj); per draw the sd is at
    # most |w_j| rms_k(m_ij - m_kj).
    n = 5
    images = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    m = patch_means(images, (2, 2))
    expected = math.factorial(n) / (math.factorial(n) - 1) * W4 * (m - m.mean(0))
    sd_bound = np.abs(W4) * np.sqrt(((m[:, None, :] - m[None]) ** 2).mean(1))
    errors = {}
    for reps in (4, 300):
        torch.manual_seed(reps)
        attr = PatchPermutation(PatchMeanLinear(W4, scalar=True)).attribute(
            images, grid=2, n_repeats=reps)
        est = patch_scores(attr, 2).double().numpy()
        assert np.all(np.abs(est - expected) <= 4 * sd_bound / math.sqrt(reps) + 1e-5), reps
        errors[reps] = np.abs(est - expected).max()
    assert errors[300] < errors[4] / 3


def test_closed_form_sklearn_two_coef_squared_var_and_convergence():
    # Scorer: -mean((d(X) - d(X_orig))^2). Shuffling column j changes d by
    # w_j (m_pi(i)j - m_ij), so E importance_j = 2 w_j^2 Var(m_j) (scikit-learn's
    # own closed form for a standardised linear model).
    images = torch.rand(30, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    m = patch_means(images, (2, 2))
    b = -float(m.mean(0) @ W4)
    X = to_patches(images, 2)
    est = ImageClassifier(PatchMeanLinear(W4, b).eval(), grid=2).fit(X)
    d0 = est.decision_function(X)
    np.testing.assert_allclose(d0, m @ W4 + b, atol=1e-5)

    def neg_mse(estimator, X, y):
        return -float(np.mean((estimator.decision_function(X) - y) ** 2))

    reps = 400
    r = permutation_importance(est, X, d0, scoring=neg_mse, n_repeats=reps, random_state=0)
    expected = 2 * W4**2 * m.var(0)
    assert r.importances[3].max() == 0.0 and expected[3] == 0.0
    # sklearn's repeats are one random sequence per column, so the first k
    # repeats are the run with n_repeats=k: the running mean is the estimate.
    # It stays within 5 standard errors (sd estimated from the k repeats, so
    # k >= 50) and ends within 5 % of the closed form.
    for k in (50, 150, reps):
        mean_k = r.importances[:, :k].mean(1)
        sd_k = r.importances[:, :k].std(1, ddof=1)
        assert np.all(np.abs(mean_k - expected) <= 5 * sd_k / math.sqrt(k) + 1e-9), k
    assert np.abs(r.importances_mean - expected).max() < 0.05 * expected.max()


# -- the two paths agree ----------------------------------------------------------------

def test_captum_and_sklearn_rank_patches_alike():
    # Captum on the log-probabilities gives, per sample, the log-loss increase;
    # its batch mean estimates what scikit-learn's neg_log_loss importance
    # measures. The permutations differ (torch vs numpy random numbers), so the
    # numbers differ a little; the rankings agree.
    from scipy.stats import spearmanr

    w = np.array([8.0, -5.0, 3.0, 0.0, 2.0, -1.2, 0.6, 0.0, 0.25])
    images = torch.rand(40, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    m = patch_means(images, (3, 3))
    scale = 2 * m.std(0).mean()
    model = PatchMeanLinear(w / scale, -float(m.mean(0) @ w) / scale, grid=(3, 3)).eval()
    X = to_patches(images, 3)
    est = ImageClassifier(model, grid=3).fit(X)
    y = est.predict(X)
    r = permutation_importance(est, X, y, scoring="neg_log_loss", n_repeats=10, random_state=0)
    torch.manual_seed(0)
    attr = PatchPermutation(lambda x: model(x).log_softmax(1)).attribute(
        images, target=torch.as_tensor(y), grid=3, n_repeats=10)
    captum_mean = patch_scores(attr, 3).mean(0).double().numpy()
    assert spearmanr(r.importances_mean, captum_mean).statistic >= 0.9
    assert np.argsort(-r.importances_mean)[:2].tolist() == [0, 1]  # the two largest |w|
    assert np.argsort(-captum_mean)[:2].tolist() == [0, 1]
    assert captum_mean[[3, 7]].tolist() == [0.0, 0.0] and (r.importances[[3, 7]] == 0).all()
    # Same quantity, same scale: the means agree to within the permutation noise.
    np.testing.assert_allclose(captum_mean[:2], r.importances_mean[:2], rtol=0.25)


# -- masks -----------------------------------------------------------------------------

def test_superpixels_follow_skimage_slic():
    from skimage.segmentation import slic

    image = torch.full((1, 3, 16, 16), 0.2)
    image[0, 0, 2:9, 3:11] = 0.9  # a red rectangle: its own superpixel
    model = lambda x: x[:, 0, 2:9, 3:11].mean((1, 2))  # noqa: E731  depends on the red area
    background = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(5)) * 0.3
    torch.manual_seed(0)
    attr = PatchPermutation(model).attribute(image, superpixels=4, background=background,
                                             n_repeats=2)
    mask = superpixel_mask(image[0], 4)
    hwc = image[0].permute(1, 2, 0).double().numpy()
    hwc = (hwc - hwc.min()) / (hwc.max() - hwc.min())
    labels = slic(hwc, n_segments=4, compactness=10.0, sigma=1.0, channel_axis=-1,
                  start_label=0)
    relabelled = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
    np.testing.assert_array_equal(mask[0, 0].numpy(), relabelled)
    assert int(mask.max()) + 1 >= 2
    values = mask_values(attr, mask)[0]
    red = int(mask[0, 0, 5, 6])
    assert int(values.argmax()) == red and values[red] > 0
    expanded = values[mask[0, 0]]  # constant inside every superpixel
    assert torch.equal(attr[0, 0], expanded)


def test_user_feature_mask_is_used_as_given():
    model = Planted()
    images = planted_images(6)
    target = model(images).argmax(1)
    mask = torch.zeros(1, 1, 12, 12, dtype=torch.long)
    mask[..., 4:8, 8:12] = 1
    torch.manual_seed(1)
    attr = PatchPermutation(model).attribute(images, target=target, feature_mask=mask)
    assert torch.count_nonzero(attr[:, :, mask[0, 0] == 0]) == 0


def test_default_grid_is_4x4():
    images = planted_images(4)
    calls = []
    PatchPermutation(lambda x: calls.append(1) or x.mean((1, 2, 3))).attribute(images)
    assert len(calls) == 1 + 16


# -- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("inputs", "kwargs", "exc", "match"),
    [
        (torch.rand(1, 3, 12, 12), {}, ValueError,
         r"'background' parameter of PatchPermutation.attribute must be a tensor of images "
         r"\(M, C, H, W\).*single image.*Got None instead"),
        (torch.rand(1, 3, 12, 12), {"background": torch.rand(2, 3, 8, 8)}, ValueError,
         r"'background'.*\(M, 3, 12, 12\).*\(2, 3, 8, 8\)"),
        (torch.rand(2, 3, 12, 12), {"grid": 5}, ValueError,
         r"'grid' parameter of PatchPermutation.attribute must be a \(rows, cols\) pair "
         r"dividing the image size \(height, width\) = \(12, 12\).*Got \(5, 5\)"),
        (torch.rand(2, 3, 12, 12), {"grid": 3, "feature_mask": torch.zeros(1, 1, 12, 12,
                                                                         dtype=torch.long)},
         ValueError, r"'grid' and 'feature_mask'.*alternatives"),
        ((torch.rand(2, 3, 12, 12),), {}, TypeError, r"'inputs'.*one torch.Tensor"),
        (torch.rand(2, 12, 12), {}, ValueError, r"'inputs'.*\(N, C, H, W\).*\(2, 12, 12\)"),
        (torch.rand(2, 3, 12, 12), {"n_repeats": 0}, ValueError,
         r"'n_repeats' parameter of PatchPermutation.attribute must be an int in the range "
         r"\[1, inf\). Got 0 instead"),
        (torch.rand(2, 3, 12, 12), {"feature_mask": torch.zeros(1, 1, 12, 12)}, TypeError,
         r"'feature_mask'.*integer"),
        (torch.rand(2, 3, 12, 12), {"feature_mask": torch.zeros(2, 1, 12, 12,
                                                                dtype=torch.long)},
         ValueError, r"'feature_mask'.*\(1, C or 1"),
        (torch.rand(2, 3, 12, 12), {"superpixels": 2.5}, TypeError, r"'superpixels'"),
    ],
    ids=["one-image-no-background", "background-shape", "grid-not-dividing",
         "grid-and-mask", "tuple-inputs", "3d-inputs", "n_repeats-0", "float-mask",
         "mask-batch", "superpixels-float"],
)
def test_bad_input_is_refused_with_a_clear_message(inputs, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        PatchPermutation(Planted()).attribute(inputs, target=0, **kwargs)


def test_forward_func_must_be_callable():
    with pytest.raises(TypeError, match=r"'forward_func' parameter of PatchPermutation"):
        PatchPermutation("resnet")


# -- a real architecture ------------------------------------------------------------------

def test_on_a_compound_scaled_efficientnet():
    # torchvision EfficientNet blocks: BatchNorm, in-place SiLU, stochastic depth.
    torch.manual_seed(0)
    model = ce.efficientnet(-2, num_classes=3)  # left in training mode on purpose
    state = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.rand(6, 3, 64, 64)
    X = to_patches(images, 2)
    est = ImageClassifier(model, grid=2).fit(X)
    with torch.inference_mode():
        expected = torch.softmax(est.model_(images), 1).double().numpy()
    np.testing.assert_allclose(est.predict_proba(X), expected, rtol=1e-4, atol=1e-6)
    assert model.training and est.model_ is not model
    for k, v in model.state_dict().items():  # BatchNorm statistics untouched
        assert torch.equal(v, state[k]), k
    from sklearn.metrics import log_loss, make_scorer

    scorer = make_scorer(log_loss, greater_is_better=False, response_method="predict_proba",
                         labels=est.classes_)  # y may hold fewer than the 3 classes
    r = permutation_importance(est, X, est.predict(X), scoring=scorer, n_repeats=1,
                               random_state=0)
    assert r.importances.shape == (4, 1) and np.isfinite(r.importances).all()

    model.eval()
    target = model(images).argmax(1)
    mask = patch_mask(64, 2)
    torch.manual_seed(5)
    theirs = FeaturePermutation(model).attribute(images, target=target, feature_mask=mask)
    torch.manual_seed(5)
    ours = PatchPermutation(model).attribute(images, target=target, grid=2)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
