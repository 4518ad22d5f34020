"""The table of bad inputs tried on every public callable, and the error each gets.

One row per (callable, bad input): what is called, the exception class and the
parameter the message must name. ``tests/test_public_functions.py`` runs every
row; ``docs/errors.md`` is generated from the same rows
(``python tests/_bad_inputs.py > docs/errors.md``) and a test checks that the
page matches.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

import captum_effnet as ce
from captum_effnet import attr, inspection, metrics, models, viz


class Tiny(nn.Module):
    """A tiny CNN with batch-norm: conv-bn-silu, conv-bn-relu, pool, linear."""

    def __init__(self, num_classes: int = 3, in_channels: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.SiLU(),
            nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def tiny() -> Tiny:
    return Tiny().eval()


def nan_tiny() -> Tiny:
    """A tiny model with one NaN weight: finite inputs, NaN outputs."""
    model = tiny()
    with torch.no_grad():
        model.features[3].weight[0, 0, 0, 0] = math.nan
    return model


def x8(n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(1))


@dataclass(frozen=True)
class Row:
    """One bad input: ``call()`` must raise ``exc`` naming ``param``."""

    func: str  # the public name, "Class" or "Class.method"
    bad: str  # what is wrong, in words (shown in docs/errors.md)
    call: Callable[[], Any]
    exc: type[Exception]
    param: str


NAN = math.nan
CAMS = ("GradCam", "GradCamPlusPlus", "XGradCam", "LayerCam", "HiResCam")


def _cam_rows(name: str) -> list[Row]:
    cls = getattr(attr, name)
    return [
        Row(name, "forward_func is a string", lambda: cls("model"), TypeError, "forward_func"),
        Row(name, "layer is an int", lambda: cls(tiny(), 3), TypeError, "layer"),
        Row(name, "layer names no submodule", lambda: cls(tiny(), "no.such"), ValueError,
            "layer"),
        Row(name, "force_eval is a string", lambda: cls(tiny(), force_eval="yes"), TypeError,
            "force_eval"),
        Row(f"{name}.attribute", "inputs is a list",
            lambda: cls(tiny()).attribute([[0.0]], target=0), TypeError, "inputs"),
        Row(f"{name}.attribute", "inputs is 3-D",
            lambda: cls(tiny()).attribute(torch.rand(3, 8, 8), target=0), ValueError,
            "inputs"),
        Row(f"{name}.attribute", "inputs is float16, the model float32",
            lambda: cls(tiny()).attribute(x8().half(), target=0), TypeError, "inputs"),
        Row(f"{name}.attribute", "inputs is an empty batch",
            lambda: cls(tiny()).attribute(torch.rand(0, 3, 8, 8), target=0), ValueError,
            "inputs"),
        Row(f"{name}.attribute", "inputs is an integer tensor",
            lambda: cls(tiny()).attribute(torch.ones(1, 3, 8, 8, dtype=torch.long), target=0),
            TypeError, "inputs"),
        Row(f"{name}.attribute", "inputs holds NaN",
            lambda: cls(tiny()).attribute(x8().fill_(NAN), target=0), ValueError, "inputs"),
        Row(f"{name}.attribute", "the model gives NaN on finite inputs",
            lambda: cls(nan_tiny()).attribute(x8(), target=0), ValueError, "forward_func"),
        Row(f"{name}.attribute", "target out of range",
            lambda: cls(tiny()).attribute(x8(), target=3), ValueError, "target"),
        Row(f"{name}.attribute", "target is a string",
            lambda: cls(tiny()).attribute(x8(), target="cat"), TypeError, "target"),
        Row(f"{name}.attribute", "one target per sample, wrong count",
            lambda: cls(tiny()).attribute(x8(), target=[0, 1, 2]), ValueError, "target"),
        Row(f"{name}.attribute", "top_k is 0",
            lambda: cls(tiny()).attribute(x8(), top_k=0), ValueError, "top_k"),
        Row(f"{name}.attribute", "interpolate_mode unknown",
            lambda: cls(tiny()).attribute(x8(), target=0, interpolate_mode="cubicle"),
            ValueError, "interpolate_mode"),
    ]


def _rows() -> list[Row]:
    rows: list[Row] = []
    add = rows.append
    # -- captum_effnet ---------------------------------------------------------------------
    for bad, kw, exc, param in [
        ("phi is a string", {"phi": "1"}, TypeError, "phi"),
        ("phi is NaN", {"phi": NAN}, ValueError, "phi"),
        ("alpha is 0", {"phi": 0, "alpha": 0.0}, ValueError, "alpha"),
        ("beta is negative", {"phi": 0, "beta": -1.0}, ValueError, "beta"),
        ("gamma is a string", {"phi": 0, "gamma": "1.15"}, TypeError, "gamma"),
        ("num_classes is 0", {"phi": 0, "num_classes": 0}, ValueError, "num_classes"),
        ("num_classes is a float", {"phi": 0, "num_classes": 2.5}, TypeError, "num_classes"),
        ("in_channels is 0", {"phi": 0, "in_channels": 0}, ValueError, "in_channels"),
        ("dropout is 1.5", {"phi": 0, "dropout": 1.5}, ValueError, "dropout"),
        ("stochastic_depth_prob is -0.1", {"phi": 0, "stochastic_depth_prob": -0.1},
         ValueError, "stochastic_depth_prob"),
        ("weights is an int", {"phi": 0, "weights": 3}, TypeError, "weights"),
        ("base_resolution is 0", {"phi": 0, "base_resolution": 0}, ValueError,
         "base_resolution"),
        ("resolution_multiple is 0", {"phi": 0, "resolution_multiple": 0}, ValueError,
         "resolution_multiple"),
    ]:
        add(Row("efficientnet", bad, lambda kw=kw: ce.efficientnet(**kw), exc, param))
    add(Row("get_attribution", "name is an int", lambda: ce.get_attribution(3), TypeError,
            "name"))
    add(Row("get_attribution", "name unknown", lambda: ce.get_attribution("gradcm"),
            ValueError, "name"))
    add(Row("get_model", "name is an int", lambda: ce.get_model(3), TypeError, "name"))
    add(Row("get_model", "name unknown", lambda: ce.get_model("efficientnet-b0"), ValueError,
            "name"))
    add(Row("get_model", "num_classes is 0",
            lambda: ce.get_model("efficientnet_b0", num_classes=0), ValueError, "num_classes"))
    add(Row("get_model", "weights is a float",
            lambda: ce.get_model("efficientnet_b0", weights=1.5), TypeError, "weights"))
    add(Row("get_model", "weights names no weights and no file",
            lambda: ce.get_model("efficientnet_lite0", weights="imagenet21k"), ValueError,
            "weights"))
    add(Row("get_transforms", "name_or_model is an int", lambda: ce.get_transforms(3),
            TypeError, "name_or_model"))
    add(Row("get_transforms", "name_or_model unknown", lambda: ce.get_transforms("resnet"),
            ValueError, "name_or_model"))
    add(Row("profile", "model_or_name is an int", lambda: ce.profile(3), TypeError,
            "model_or_name"))
    add(Row("profile", "model_or_name unknown", lambda: ce.profile("effnet"), ValueError,
            "model_or_name"))
    add(Row("profile", "resolution is 0", lambda: ce.profile("efficientnet_b0", 0),
            ValueError, "resolution"))
    add(Row("profile", "resolution is a string", lambda: ce.profile("efficientnet_b0", "224"),
            TypeError, "resolution"))
    add(Row("register_plugin", "plugin is None", lambda: ce.register_plugin(None),
            TypeError, "plugin"))
    add(Row("register_plugin", "name is an int", lambda: ce.register_plugin(object(), 3),
            TypeError, "name"))
    add(Row("unregister_plugin", "name is an int", lambda: ce.unregister_plugin(3), TypeError,
            "name"))
    add(Row("unregister_plugin", "name unknown", lambda: ce.unregister_plugin("nope"),
            ValueError, "name"))
    # -- captum_effnet.attr ----------------------------------------------------------------
    for name in CAMS:
        rows.extend(_cam_rows(name))
    add(Row("GradCamPlusPlus", "eps is negative",
            lambda: attr.GradCamPlusPlus(tiny(), eps=-1.0), ValueError, "eps"))
    add(Row("XGradCam", "eps is a string", lambda: attr.XGradCam(tiny(), eps="0"),
            TypeError, "eps"))
    add(Row("GuidedBackprop", "model is a function",
            lambda: attr.GuidedBackprop(lambda x: x), TypeError, "model"))
    add(Row("GuidedBackprop", "activations holds a non-module class",
            lambda: attr.GuidedBackprop(tiny(), activations=(int,)), TypeError, "activations"))
    add(Row("GuidedBackprop.attribute", "inputs is 3-D",
            lambda: attr.GuidedBackprop(tiny()).attribute(torch.rand(3, 8, 8), target=0),
            ValueError, "inputs"))
    add(Row("GuidedBackprop.attribute", "target out of range",
            lambda: attr.GuidedBackprop(tiny()).attribute(x8(), target=7), ValueError,
            "target"))
    add(Row("GuidedBackprop.attribute", "the model gives NaN on finite inputs",
            lambda: attr.GuidedBackprop(nan_tiny()).attribute(x8(), target=0), ValueError,
            "model"))
    add(Row("GuidedGradCam", "model is a string", lambda: attr.GuidedGradCam("m"), TypeError,
            "model"))
    add(Row("GuidedGradCam.attribute", "target out of range",
            lambda: attr.GuidedGradCam(tiny()).attribute(x8(), target=7), ValueError,
            "target"))
    add(Row("GuidedGradCam.attribute", "inputs holds inf",
            lambda: attr.GuidedGradCam(tiny()).attribute(x8().fill_(math.inf), target=0),
            ValueError, "inputs"))
    pp = attr.PatchPermutation
    add(Row("PatchPermutation", "forward_func is a string", lambda: pp("resnet"), TypeError,
            "forward_func"))
    for bad, args, kw, exc, param in [
        ("inputs is a tuple", (x8(),), {}, TypeError, "inputs"),
        ("inputs is 3-D", torch.rand(2, 8, 8), {}, ValueError, "inputs"),
        ("inputs holds NaN", x8().fill_(NAN), {}, ValueError, "inputs"),
        ("grid is 0", x8(), {"grid": 0}, ValueError, "grid"),
        ("grid does not divide the image", x8(), {"grid": 3}, ValueError, "grid"),
        ("grid is a string", x8(), {"grid": "2"}, TypeError, "grid"),
        ("n_repeats is 0", x8(), {"n_repeats": 0}, ValueError, "n_repeats"),
        ("perturbations_per_eval is 0", x8(), {"perturbations_per_eval": 0}, ValueError,
         "perturbations_per_eval"),
        ("superpixels is a float", x8(), {"superpixels": 2.5, "grid": None}, TypeError,
         "superpixels"),
        ("one image and no background", x8(1), {}, ValueError, "background"),
        ("target out of range", x8(), {"target": 9}, ValueError, "target"),
        ("target is a float", x8(), {"target": 0.5}, TypeError, "target"),
        ("two targets per sample", x8(), {"target": [[0, 1], [1, 2]]}, ValueError, "target"),
        ("inputs is float64, the model float32", x8().double(), {}, TypeError, "inputs"),
        ("inputs has 2 channels, the model takes 3", x8()[:, :2], {}, ValueError, "inputs"),
    ]:
        kw = {"target": 0, "grid": 2, **kw}
        add(Row("PatchPermutation.attribute", bad,
                lambda args=args, kw=kw: pp(tiny()).attribute(args, **kw), exc, param))
    add(Row("PatchPermutation.attribute", "the model gives NaN on finite inputs",
            lambda: pp(nan_tiny()).attribute(x8(), target=0, grid=2), ValueError,
            "forward_func"))
    add(Row("find_target_layer", "model is a string", lambda: attr.find_target_layer("m"),
            TypeError, "model"))
    add(Row("find_target_layer", "model has no 4-D layer",
            lambda: attr.find_target_layer(nn.Sequential(nn.Flatten(), nn.Linear(48, 2)),
                                          torch.rand(1, 3, 4, 4)),
            ValueError,
            "model"))
    add(Row("find_target_layer", "inputs is a list",
            lambda: attr.find_target_layer(tiny(), [1.0]), TypeError, "inputs"))
    # -- captum_effnet.inspection ------------------------------------------------------------
    ic = inspection.ImageClassifier
    X = inspection.to_patches(x8(4), grid=2)
    add(Row("ImageClassifier", "model is a string", lambda: ic("m", grid=2).fit(X), TypeError,
            "model"))
    add(Row("ImageClassifier", "grid is 0", lambda: ic(tiny(), grid=0).fit(X), ValueError,
            "grid"))
    add(Row("ImageClassifier", "batch_size is 0",
            lambda: ic(tiny(), grid=2, batch_size=0).fit(X), ValueError, "batch_size"))
    add(Row("ImageClassifier", "transform is not callable",
            lambda: ic(tiny(), grid=2, transform=3).fit(X), TypeError, "transform"))
    add(Row("ImageClassifier", "device unknown",
            lambda: ic(tiny(), grid=2, device="gpu9").fit(X), ValueError, "device"))
    add(Row("ImageClassifier.fit", "X is not patches", lambda: ic(tiny(), grid=2).fit("x"),
            TypeError, "X"))
    add(Row("ImageClassifier.fit", "X has the wrong number of columns",
            lambda: ic(tiny(), grid=3).fit(X), ValueError, "X"))
    add(Row("ImageClassifier.predict", "X holds NaN",
            lambda: ic(tiny(), grid=2).fit(X).predict(
                inspection.to_patches(x8(2).fill_(NAN), grid=2)), ValueError, "X"))
    add(Row("ImageClassifier.predict", "the model gives NaN on finite patches",
            lambda: ic(nan_tiny(), grid=2).fit(X).predict(X), ValueError, "model"))
    add(Row("ImageClassifier.predict_proba", "X is a float array",
            lambda: ic(tiny(), grid=2).fit(X).predict_proba(np.zeros((2, 4))), TypeError, "X"))
    add(Row("ImageClassifier.decision_function", "X has patches of unequal shapes",
            lambda: ic(tiny(), grid=2).fit(X).decision_function(_ragged(X)), ValueError, "X"))
    add(Row("ImageClassifier.predict_log_proba", "X is 1-D",
            lambda: ic(tiny(), grid=2).fit(X).predict_log_proba(X[0]), ValueError, "X"))
    add(Row("to_patches", "images is a string", lambda: inspection.to_patches("img", 2),
            TypeError, "images"))
    add(Row("to_patches", "images is 2-D", lambda: inspection.to_patches(np.zeros((8, 8)), 2),
            ValueError, "images"))
    add(Row("to_patches", "grid is 0", lambda: inspection.to_patches(x8(), 0), ValueError,
            "grid"))
    add(Row("to_patches", "grid does not divide the image",
            lambda: inspection.to_patches(x8(), 3), ValueError, "grid"))
    add(Row("to_patches", "grid has three numbers",
            lambda: inspection.to_patches(x8(), (2, 2, 2)), TypeError, "grid"))
    add(Row("to_patches", "transform is not callable",
            lambda: inspection.to_patches(x8(), 2, transform="norm"), TypeError, "transform"))
    add(Row("from_patches", "X is a string", lambda: inspection.from_patches("x", 2),
            TypeError, "X"))
    add(Row("from_patches", "grid does not match X's columns",
            lambda: inspection.from_patches(X, 3), ValueError, "X"))
    add(Row("patch_feature_names", "grid is 0", lambda: inspection.patch_feature_names(0),
            ValueError, "grid"))
    add(Row("patch_feature_names", "grid is a float",
            lambda: inspection.patch_feature_names(2.5), TypeError, "grid"))
    add(Row("patch_scores", "attributions is 2-D",
            lambda: inspection.patch_scores(torch.zeros(8, 8), 2), ValueError, "attributions"))
    add(Row("patch_scores", "attributions is a list",
            lambda: inspection.patch_scores([[0.0]], 2), TypeError, "attributions"))
    add(Row("patch_scores", "grid does not divide the map",
            lambda: inspection.patch_scores(torch.zeros(1, 1, 8, 8), 3), ValueError, "grid"))
    add(Row("importance_map", "importances has the wrong length",
            lambda: inspection.importance_map(np.ones(5), 2, 8), ValueError, "importances"))
    add(Row("importance_map", "size is 0",
            lambda: inspection.importance_map(np.ones(4), 2, 0), ValueError, "size"))
    add(Row("importance_map", "mode unknown",
            lambda: inspection.importance_map(np.ones(4), 2, 8, mode="cubic"), ValueError,
            "mode"))
    add(Row("importance_map", "importances holds NaN",
            lambda: inspection.importance_map(np.full(4, NAN), 2, 8), ValueError,
            "importances"))
    add(Row("plot_importances", "result is an int", lambda: inspection.plot_importances(3),
            ValueError, "result"))
    add(Row("plot_importances", "top_k is 0",
            lambda: inspection.plot_importances(np.ones(4), top_k=0), ValueError, "top_k"))
    # -- captum_effnet.models ----------------------------------------------------------------
    cs = models.CompoundScaling
    add(Row("CompoundScaling", "alpha is 0", lambda: cs(alpha=0.0), ValueError, "alpha"))
    add(Row("CompoundScaling", "base_resolution is a float",
            lambda: cs(base_resolution=224.0), TypeError, "base_resolution"))
    add(Row("CompoundScaling.multipliers", "phi is a string", lambda: cs().multipliers("1"),
            TypeError, "phi"))
    add(Row("CompoundScaling.cost_ratio", "phi is inf", lambda: cs().cost_ratio(math.inf),
            ValueError, "phi"))
    add(Row("phi_for_budget", "no budget given", lambda: models.phi_for_budget(), ValueError,
            "max_macs"))
    add(Row("phi_for_budget", "max_macs is negative",
            lambda: models.phi_for_budget(max_macs=-1.0), ValueError, "max_macs"))
    add(Row("phi_for_budget", "step is 0",
            lambda: models.phi_for_budget(max_params=5e6, step=0.0), ValueError, "step"))
    add(Row("scale_table", "phis is a number", lambda: models.scale_table(1.0), TypeError,
            "phis"))
    add(Row("scale_table", "phis holds NaN", lambda: models.scale_table([0.0, NAN]),
            ValueError, "phis"))
    add(Row("search_coefficients", "evaluate is not callable",
            lambda: models.search_coefficients(3), TypeError, "evaluate"))
    add(Row("search_coefficients", "target_ratio is 0",
            lambda: models.search_coefficients(lambda m, r: 0.0, target_ratio=0.0), ValueError,
            "target_ratio"))
    add(Row("search_coefficients", "tolerance is negative",
            lambda: models.search_coefficients(lambda m, r: 0.0, tolerance=-0.1), ValueError,
            "tolerance"))
    add(Row("profile", "resolution is negative",
            lambda: models.profile("efficientnet_b0", -1), ValueError, "resolution"))
    add(Row("get_transforms", "weights unknown",
            lambda: models.get_transforms("efficientnet_lite0", "imagenet21k"), ValueError,
            "weights"))
    add(Row("efficientnet", "phi is None", lambda: models.efficientnet(None),
            TypeError, "phi"))
    # -- captum_effnet.viz -------------------------------------------------------------------
    img = np.zeros((8, 8, 3), dtype=np.float32)
    amap = np.ones((8, 8), dtype=np.float32)
    add(Row("to_hwc_image", "image is a string", lambda: viz.to_hwc_image("img"), TypeError,
            "image"))
    add(Row("to_hwc_image", "image is 1-D", lambda: viz.to_hwc_image(np.zeros(8)), ValueError,
            "image"))
    add(Row("to_hwc_image", "image holds NaN", lambda: viz.to_hwc_image(np.full((8, 8, 3), NAN)),
            ValueError, "image"))
    add(Row("to_hw", "attribution is a string", lambda: viz.to_hw("map"), TypeError,
            "attribution"))
    add(Row("to_hw", "attribution is 5-D", lambda: viz.to_hw(np.zeros((1, 1, 1, 4, 4))),
            ValueError, "attribution"))
    add(Row("to_hw", "size has a zero", lambda: viz.to_hw(amap, (0, 8)), ValueError, "size"))
    add(Row("to_hw", "attribution holds NaN", lambda: viz.to_hw(np.full((8, 8), NAN)),
            ValueError, "attribution"))
    add(Row("overlay", "method unknown", lambda: viz.overlay(img, amap, method="heatmap"),
            ValueError, "method"))
    add(Row("overlay", "sign unknown", lambda: viz.overlay(img, amap, sign="pos"), ValueError,
            "sign"))
    add(Row("overlay", "alpha_overlay is 2", lambda: viz.overlay(img, amap, alpha_overlay=2.0),
            ValueError, "alpha_overlay"))
    add(Row("overlay", "outlier_perc is 150", lambda: viz.overlay(img, amap, outlier_perc=150),
            ValueError, "outlier_perc"))
    add(Row("overlay", "attribution holds inf",
            lambda: viz.overlay(img, np.full((8, 8), math.inf)), ValueError, "attribution"))
    add(Row("figure", "attributions is a list", lambda: viz.figure(img, [amap]), TypeError,
            "attributions"))
    add(Row("figure", "attributions is empty", lambda: viz.figure(img, {}), ValueError,
            "attributions"))
    add(Row("figure", "panel_size is 0", lambda: viz.figure(img, {"a": amap}, panel_size=0),
            ValueError, "panel_size"))
    # -- captum_effnet.metrics ---------------------------------------------------------------
    maps = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(2))
    masks = torch.ones(2, 8, 8, dtype=torch.bool)
    di = metrics.deletion_insertion
    for bad, call, exc, param in [
        ("forward_func is a string", lambda: di("model", x8(), maps, 0), TypeError,
         "forward_func"),
        ("inputs is 3-D", lambda: di(tiny(), x8()[0], maps, 0), ValueError, "inputs"),
        ("attributions of another size", lambda: di(tiny(), x8(), torch.rand(2, 5, 5), 0),
         ValueError, "attributions"),
        ("attributions hold NaN", lambda: di(tiny(), x8(), torch.full((2, 8, 8), NAN), 0),
         ValueError, "attributions"),
        ("target out of range", lambda: di(tiny(), x8(), maps, 99), ValueError, "target"),
        ("steps is 0", lambda: di(tiny(), x8(), maps, 0, steps=0), ValueError, "steps"),
        ("batch_size is 0", lambda: di(tiny(), x8(), maps, 0, batch_size=0), ValueError,
         "batch_size"),
        ("baseline is a string", lambda: di(tiny(), x8(), maps, 0, baseline="blur"),
         TypeError, "baseline"),
    ]:
        add(Row("deletion_insertion", bad, call, exc, param))
    rt = metrics.randomization_test
    for bad, call, exc, param in [
        ("attribution_cls is an int", lambda: rt(3, tiny(), x8(), 0), TypeError,
         "attribution_cls"),
        ("model is a string", lambda: rt(attr.GradCam, "model", x8(), 0), TypeError, "model"),
        ("layers unknown", lambda: rt(attr.GradCam, tiny(), x8(), 0, layers="all"),
         ValueError, "layers"),
        ("units names no submodule", lambda: rt(attr.GradCam, tiny(), x8(), 0, units=["no"]),
         ValueError, "units"),
        ("seed is a string", lambda: rt(attr.GradCam, tiny(), x8(), 0, seed="a"), TypeError,
         "seed"),
    ]:
        add(Row("randomization_test", bad, call, exc, param))
    add(Row("randomization_units", "model is a string",
            lambda: metrics.randomization_units("model"), TypeError, "model"))
    pg = metrics.pointing_game
    for bad, call, exc, param in [
        ("attributions is a string", lambda: pg("map", masks), TypeError, "attributions"),
        ("attributions hold NaN", lambda: pg(torch.full((2, 8, 8), NAN), masks), ValueError,
         "attributions"),
        ("masks_or_boxes of another batch size",
         lambda: pg(maps, torch.ones(3, 8, 8, dtype=torch.bool)), ValueError, "masks_or_boxes"),
        ("tolerance is negative", lambda: pg(maps, masks, tolerance=-1), ValueError,
         "tolerance"),
    ]:
        add(Row("pointing_game", bad, call, exc, param))
    ms = metrics.make_synthetic_objects
    for bad, call, exc, param in [
        ("n_samples is 0", lambda: ms(0), ValueError, "n_samples"),
        ("n_samples is a string", lambda: ms("5"), TypeError, "n_samples"),
        ("n_classes is 99", lambda: ms(4, n_classes=99), ValueError, "n_classes"),
        ("image_size is 3", lambda: ms(4, image_size=3), ValueError, "image_size"),
        ("grid is 0", lambda: ms(4, grid=0), ValueError, "grid"),
        ("contrast is negative", lambda: ms(4, contrast=-1), ValueError, "contrast"),
    ]:
        add(Row("make_synthetic_objects", bad, call, exc, param))
    return rows


def _ragged(X: np.ndarray) -> np.ndarray:
    out = X.copy()
    out[0, 0] = np.zeros((3, 2, 2), dtype=np.float32)
    return out


ROWS = _rows()

#: Public names not in the table, with the reason.
EXEMPT = {
    "PluginError": "an exception class",
    "PluginWarning": "a warning class",
    "PluginInfo": "a result record (named tuple) built by list_plugins",
    "ModelProfile": "a result record (dataclass) built by profile",
    "__version__": "a string",
    "hookimpl": "pluggy's marker, validated by pluggy",
    "hookspec": "pluggy's marker, validated by pluggy",
    "list_attributions": "takes no parameters",
    "list_models": "takes no parameters",
    "list_plugins": "takes no parameters",
    "BUILTIN_MODELS": "a dict",
    "METHODS": "a tuple of names",
    "SIGNS": "a tuple of names",
    "SHAPES": "a tuple of names",
    "DeletionInsertion": "a result record (dataclass) built by deletion_insertion",
    "PointingResult": "a result record (dataclass) built by pointing_game",
    "RandomizationResult": "a result record (dataclass) built by randomization_test",
    "SyntheticObjects": "a result record (dataclass) built by make_synthetic_objects",
}


#: Bad files (tests/test_files.py parametrizes over these keys): case -> (call,
#: error, what the message says besides the file's full path).
CHECKPOINT_ROWS = {
    "empty": "Could not read the checkpoint file",
    "truncated": "Could not read the checkpoint file",
    "one byte flipped in the zip header": "Could not read the checkpoint file",
    "unsafe pickle": "Could not read the checkpoint file",
    "a tensor, not a state dict": "not a state dict",
    "an empty dict": "not a state dict",
    "a dict of strings": "not tensors",
    "another architecture (a plain CNN)": "do not fit efficientnet_b0",
    "another EfficientNet (phi=-4)": "do not fit efficientnet_b0",
}
IMAGE_ROWS = {
    "empty": "is not an image file",
    "text": "is not an image file",
    "truncated PNG": "truncated or corrupt",
    "truncated JPEG": "truncated or corrupt",
    "PNG with garbage after the header": "truncated or corrupt",
}
#: Plugin failures (tests/test_plugins.py): case -> what is reported.
PLUGIN_ROWS = {
    "plugin fails to import": "PluginWarning naming the plugin and its distribution "
                              "(PluginError in strict mode); the others still load",
    "register hook raises": "PluginWarning naming the plugin; nothing it staged is kept",
    "register hook returns a value": "PluginWarning naming the plugin and the type "
                                     "returned; nothing it staged is kept",
    "registers a non-callable model builder": "PluginWarning naming the plugin: 'callable'",
    "registers a non-Attribution class or an instance": "PluginWarning naming the plugin: "
                                                        "'subclass of captum.attr.Attribution'",
    "model builder returns a non-module": "PluginError naming the model and the plugin",
    "two plugins register one name": "PluginError naming both plugins",
    "target-layer hook raises at call time": "PluginWarning naming the plugin; the generic "
                                             "rule answers instead",
    "target-layer hook answers a layer not in the model": "PluginError naming the plugin",
}


def _example_message() -> str:
    try:
        inspection.to_patches(x8(), 3)
    except ValueError as exc:
        return str(exc)
    raise AssertionError("to_patches accepted a grid that does not divide the image")


def markdown() -> str:
    """The docs/errors.md page."""
    lines = [
        "# Errors: each bad input tried, and the error it gets",
        "",
        "Every public function and class of `captum_effnet`, `captum_effnet.attr`,",
        "`captum_effnet.inspection`, `captum_effnet.models` and `captum_effnet.viz` is",
        "called with wrong types and values by `tests/test_public_functions.py`. Each row",
        "below is one such call; the test checks that it raises the error shown and that",
        "the message names the parameter, in the one message form shared by the package:",
        "",
        *("    " + line for line in textwrap.wrap(_example_message(), 84)),
        "",
        "Wrong types raise `TypeError`, wrong values `ValueError`. NaN or infinite",
        "inputs are refused (a map computed from them would be NaN everywhere).",
        "A model that gives NaN or inf on finite inputs is refused the same way (naming",
        "`forward_func` or `model`) instead of returning a NaN map. Files and plugins",
        "are listed after the table.",
        "",
        "This page is generated from the test's table: "
        "`python tests/_bad_inputs.py > docs/errors.md`.",
        "",
        "| callable | bad input | error | parameter named |",
        "|---|---|---|---|",
    ]
    for r in ROWS:
        lines.append(f"| `{r.func}` | {r.bad} | `{r.exc.__name__}` | `{r.param}` |")
    lines += ["", "Public names with no parameters to check:", ""]
    for name, why in EXEMPT.items():
        lines.append(f"- `{name}`: {why}")
    lines += ["", "## Files", "",
              "`get_model(name, weights=path)` with a bad checkpoint raises `ValueError`, "
              "and `captum-effnet explain` with a bad image raises `ValueError` "
              "(`FileNotFoundError` when missing); the message holds the file's full path "
              "and nothing is returned (a model given to the loader keeps its weights). "
              "Tested in `tests/test_files.py`.", "",
              "| file | what is wrong | message says |", "|---|---|---|"]
    lines += [f"| checkpoint | {k} | {v} |" for k, v in CHECKPOINT_ROWS.items()]
    lines += ["| checkpoint | missing, or a directory | `'weights' parameter ... (no such "
              "file)` / `(a directory)` |"]
    lines += [f"| image | {k} | {v} |" for k, v in IMAGE_ROWS.items()]
    lines += ["| image | missing, or a directory | `FileNotFoundError`: does not exist |"]
    lines += ["", "## Plugins", "", "Tested in `tests/test_plugins.py`.", "",
              "| plugin failure | reported as |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in PLUGIN_ROWS.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
