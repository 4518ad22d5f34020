"""Overlays and report figures (captum_effnet.viz)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import LayerAttribution
from captum.attr import visualization as captum_viz

from captum_effnet import viz


def test_upsampling_matches_captums_interpolate():
    att = torch.rand(1, 1, 7, 7)
    ours = viz.to_hw(att, size=(224, 224))
    theirs = LayerAttribution.interpolate(att, (224, 224), interpolate_mode="bilinear")
    np.testing.assert_allclose(ours, theirs[0, 0].numpy(), atol=1e-6)


@pytest.mark.parametrize("layout", ["chw", "hwc", "nchw", "uint8", "pil"])
def test_image_layouts_give_the_same_picture(layout):
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    expected = rgb / 255.0
    as_float = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    image = {
        "chw": as_float,
        "hwc": as_float.permute(1, 2, 0).numpy(),
        "nchw": as_float[None],
        "uint8": rgb,
        "pil": Image.fromarray(rgb),
    }[layout]
    np.testing.assert_allclose(viz.to_hwc_image(image), expected, atol=1e-6)


def test_overlay_draws_what_captum_draws():
    rng = np.random.default_rng(1)
    img = rng.random((16, 16, 3))
    att = rng.random((16, 16))
    _fig, ax = viz.overlay(img, att, method="heat_map", sign="positive", show_colorbar=False)
    _ref_fig, ref_ax = captum_viz.visualize_image_attr(
        att[..., None], img, method="heat_map", sign="positive", cmap="jet", outlier_perc=0,
        use_pyplot=False,
    )
    ours = ax.get_images()[0].get_array()
    theirs = ref_ax.get_images()[0].get_array()
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=1e-6)


def test_figure_has_photo_maps_and_bars():
    fig = viz.figure(torch.rand(3, 32, 32), {"A": torch.rand(4, 4), "B": torch.rand(8, 8)},
                     predictions=[("tabby, tabby cat", 0.7), ("tiger cat", 0.2)], title="t")
    titles = [a.get_title() for a in fig.axes]
    assert titles[:4] == ["photo", "A", "B", "top-2"]
    assert fig._suptitle.get_text() == "t"


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"method": "hot"}, ValueError, "'method' parameter of overlay must be one of"),
        ({"sign": "plus"}, ValueError, "'sign' parameter of overlay"),
        ({"alpha_overlay": 2.0}, ValueError, "'alpha_overlay'"),
    ],
)
def test_overlay_bad_options(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        viz.overlay(torch.rand(3, 8, 8), torch.rand(8, 8), **kwargs)


def test_bad_maps_and_images_are_named():
    with pytest.raises(ValueError, match="'attribution'.*NaN"):
        viz.to_hw(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="'image'.*1 or 3 channels"):
        viz.to_hwc_image(np.zeros((8, 8, 5)))
    with pytest.raises(TypeError, match="'image'"):
        viz.to_hwc_image("cat.png")
