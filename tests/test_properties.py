"""Property tests (hypothesis): random shapes, dtypes, targets and grids.

Each call gives either a correct result (checked against an invariant or a
reference computed another way) or a ``ValueError``/``TypeError`` that names a
parameter in the package's message form, never an ``AssertionError``,
``IndexError`` or an error from deep inside torch.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from _bad_inputs import Tiny
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from torch import nn

import captum_effnet as ce
from captum_effnet.attr import GradCam, PatchPermutation
from captum_effnet.inspection import ImageClassifier, from_patches, to_patches

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
DTYPES = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64])
MESSAGE = re.compile(r"The '\w+'( and '\w+')? parameters? of [\w.()' ]+ (must|are)")


@contextmanager
def clear_error_or_result():
    """Allow only ValueError/TypeError in the package's message form."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        assert MESSAGE.search(str(exc)), f"{type(exc).__name__}: {exc}"
        event(f"{type(exc).__name__} naming {str(exc).split(' parameter')[0]}")
    else:
        event("a checked result")


def _model(in_channels: int, num_classes: int) -> nn.Module:
    return Tiny(num_classes=num_classes, in_channels=in_channels).eval()


FAULTS = st.sampled_from([None] * 12 + ["channels", "dtype", "empty", "target"])


@SETTINGS
@example(n=2, c=3, h=7, w=5, classes=3, target=2, fault=None, dtype=torch.float64)
@example(n=1, c=1, h=1, w=9, classes=1, target=None, fault=None, dtype=torch.float64)
@given(n=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(1, 10), w=st.integers(1, 10),
       classes=st.integers(1, 4), target=st.integers(0, 3) | st.none(), fault=FAULTS,
       dtype=DTYPES)
def test_gradcam_result_or_clear_error(n, c, h, w, classes, target, fault, dtype):
    """Mostly valid calls (checked against Captum), and one fault at a time."""
    model = _model(c, classes)
    if target is not None:
        target %= classes
    c_in, x_dtype = c, torch.float32
    if fault == "channels":
        c_in = c % 4 + 1
    elif fault == "dtype":
        x_dtype = dtype if dtype != torch.float32 else torch.int64
    elif fault == "empty":
        n = 0
    elif fault == "target":
        target = classes + (target or 0)
    x = (torch.rand(n, c_in, h, w, generator=torch.Generator().manual_seed(n * 31 + h))
         * 4).to(x_dtype)
    with clear_error_or_result():
        maps = GradCam(model).attribute(x, target=target)
        # only valid calls get here: check the result against its definition
        assert fault is None
        assert maps.shape == (n, 1, h, w) and maps.dtype == x.dtype
        assert torch.isfinite(maps).all() and (maps >= 0).all()  # ReLU'd
        # Captum's LayerGradCam on the layer the adapter picked (shortcut oracle)
        from captum.attr import LayerAttribution, LayerGradCam

        t = model(x).argmax(1) if target is None else target
        ref = LayerGradCam(model, model.features[5]).attribute(x, target=t,
                                                               relu_attributions=True)
        ref = LayerAttribution.interpolate(ref, (h, w), "bilinear")
        torch.testing.assert_close(maps, ref, atol=1e-5, rtol=1e-4)


class OnePatch(nn.Module):
    """Scores depend only on the mean of patch (pr, pc): the planted signal.

    It takes any dtype (as a user's function reading uint8 images would).
    """

    def __init__(self, rows: int, cols: int, pr: int, pc: int) -> None:
        super().__init__()
        self.rows, self.cols, self.pr, self.pc = rows, cols, pr, pc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2] // self.rows, x.shape[3] // self.cols
        patch = x[:, :, self.pr * h:(self.pr + 1) * h, self.pc * w:(self.pc + 1) * w]
        m = patch.double().mean((1, 2, 3))
        return torch.stack([m, -m], 1)


@SETTINGS
@example(n=3, c=2, rows=2, cols=3, scale=2, dtype=torch.float32, where=5, target=0,
         fault=None)
@given(n=st.integers(2, 4), c=st.integers(1, 3), rows=st.integers(1, 4),
       cols=st.integers(1, 4), scale=st.integers(1, 3), dtype=DTYPES,
       where=st.integers(0, 15), target=st.integers(0, 1),
       fault=st.sampled_from([None] * 8 + ["grid", "one image", "target", "zero grid"]))
def test_patch_permutation_only_the_planted_patch_matters(n, c, rows, cols, scale, dtype,
                                                          where, target, fault):
    """Any dtype (the model reads any), one fault at a time."""
    h, w = rows * scale, cols * scale
    pr, pc = divmod(where % (rows * cols), cols)
    grid = (rows, cols)
    if fault == "grid":
        h += 1 if rows > 1 else 0
        grid = (rows, cols + w) if rows == 1 else grid
    elif fault == "one image":
        n = 1
    elif fault == "target":
        target = 2
    elif fault == "zero grid":
        grid = (0, cols)
    x = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(h * 7 + w)).to(dtype)
    model = OnePatch(rows, cols, pr, pc)
    with clear_error_or_result():
        torch.manual_seed(0)
        out = PatchPermutation(model).attribute(x, target=target, grid=grid)
        assert fault is None
        assert out.shape == x.shape and torch.isfinite(out).all()
        ph, pw = h // rows, w // cols
        inside = torch.zeros(h, w, dtype=torch.bool)
        inside[pr * ph:(pr + 1) * ph, pc * pw:(pc + 1) * pw] = True
        assert (out[..., ~inside] == 0).all()  # no other patch gets any attribution
        # within the planted patch, each sample gets f(x_i) - f(x_perm(i)), constant
        # over the patch; summed over the batch this is zero (a permutation)
        vals = out[..., inside].double().reshape(n, -1)
        assert torch.allclose(vals, vals[:, :1].expand_as(vals))
        total = float(vals[:, 0].sum())
        assert abs(total) < 1e-3 * (1 + float(vals[:, 0].abs().sum()))
        # and a sample whose planted patch mean is the largest can only lose
        means = x[:, :, pr * ph:(pr + 1) * ph, pc * pw:(pc + 1) * pw].double().mean((1, 2, 3))
        top = int(means.argmax()) if target == 0 else int(means.argmin())
        assert float(vals[top, 0]) >= -1e-6


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 3), rows=st.integers(1, 4),
       cols=st.integers(1, 4), scale=st.integers(1, 3), where=st.integers(0, 15))
def test_to_patches_round_trip_and_a_column_swap_moves_one_patch(n, c, rows, cols, scale,
                                                                 where):
    h, w = rows * scale, cols * scale
    images = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(n + 10 * h))
    X = to_patches(images, grid=(rows, cols))
    assert X.shape == (n, rows * cols)
    torch.testing.assert_close(from_patches(X, (rows, cols)), images, rtol=0, atol=0)
    j = where % (rows * cols)
    X2 = X.copy()
    X2[:, j] = np.roll(X[:, j], 1)  # sklearn's column permutation
    moved = from_patches(X2, (rows, cols))
    r, q = divmod(j, cols)
    inside = torch.zeros(h, w, dtype=torch.bool)
    inside[r * scale:(r + 1) * scale, q * scale:(q + 1) * scale] = True
    assert torch.equal(moved[..., ~inside], images[..., ~inside])  # only patch j changes
    torch.testing.assert_close(moved[..., inside], images.roll(1, 0)[..., inside])


@SETTINGS
@example(n=3, c=2, classes=3, grid=2, scale=2, extra=0)
@given(n=st.integers(1, 4), c=st.integers(1, 3), classes=st.integers(1, 4),
       grid=st.integers(0, 4), scale=st.integers(1, 2), extra=st.integers(0, 1))
def test_image_classifier_probabilities_or_clear_error(n, c, classes, grid, scale, extra):
    size = max(grid, 1) * scale
    images = torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(n + size))
    model = _model(c, classes)
    with clear_error_or_result():
        X = to_patches(images, grid=max(grid, 1))
        clf = ImageClassifier(model, grid=grid + extra).fit(X)
        proba = clf.predict_proba(X)
        assert grid + extra == max(grid, 1)
        assert proba.shape == (n, classes) and np.isfinite(proba).all()
        np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
        with torch.no_grad():
            ref = torch.softmax(model(images), 1).double().numpy()
        np.testing.assert_allclose(proba, ref, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(clf.predict(X), clf.classes_[ref.argmax(1)])


@settings(max_examples=12, deadline=None, derandomize=True, database=None)
@example(phi=-3.5, in_channels=2, num_classes=4, n=2, alpha=1.2)
@given(phi=st.floats(-4, -1, allow_nan=False), in_channels=st.integers(1, 4),
       num_classes=st.integers(1, 5), n=st.integers(1, 2),
       alpha=st.sampled_from([1.2, 0.0, -1.0, float("inf")]))
def test_efficientnet_phi_builds_and_runs_or_clear_error(phi, in_channels, num_classes, n,
                                                          alpha):
    with clear_error_or_result():
        model = ce.efficientnet(phi, in_channels=in_channels, num_classes=num_classes,
                                alpha=alpha).eval()
        assert alpha == 1.2
        res = model.meta["resolution"]
        assert isinstance(res, int) and res % 8 == 0 and res > 0
        assert model.meta["depth"] == pytest.approx(1.2 ** phi)
        assert ce.profile(model).params == sum(p.numel() for p in model.parameters())
        with torch.no_grad():
            out = model(torch.rand(n, in_channels, 32, 32))
        assert out.shape == (n, num_classes) and torch.isfinite(out).all()
