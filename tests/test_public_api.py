"""The public surface: ``__all__``, documented hooks, a test per hook."""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import captum_effnet as ce
from captum_effnet import hookspecs

ROOT = Path(__file__).resolve().parents[1]

CONTRACT = {  # DESIGN.md's "Public API" names that users and checks rely on
    "list_models", "get_model", "efficientnet", "profile", "get_transforms",
    "list_attributions", "get_attribution", "list_plugins", "hookimpl",
}


def _public_names(module: types.ModuleType) -> set[str]:
    return {
        name for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }


def test_all_equals_the_public_names():
    assert sorted(ce.__all__) == sorted(set(ce.__all__))
    assert set(ce.__all__) == _public_names(ce) | {"__version__"}
    assert set(ce.__all__) >= CONTRACT


def test_subpackages_export_the_contract():
    from captum_effnet import attr, inspection, metrics, models

    assert {"GradCam", "GradCamPlusPlus", "PatchPermutation"} <= set(attr.__all__)
    assert {"ImageClassifier", "to_patches", "importance_map"} <= set(inspection.__all__)
    assert {"deletion_insertion", "randomization_test", "pointing_game"} <= set(metrics.__all__)
    for module in (attr, inspection, metrics, models):
        assert set(module.__all__) == _public_names(module), module.__name__


def _hooks() -> list[str]:
    return [n for n in dir(hookspecs) if n.startswith("captum_effnet_")]


def test_every_hook_is_documented_with_its_exact_signature():
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert len(_hooks()) == 3
    for name in _hooks():
        func = getattr(hookspecs, name)
        assert func.__doc__ and len(func.__doc__.strip()) > 50, name
        params = ", ".join(inspect.signature(func).parameters)
        assert f"{name}({params})" in docs, f"{name}({params}) is not in docs/plugins.md"


def test_every_hook_has_a_test():
    source = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    for name in _hooks():
        assert re.search(rf"def test_hook_{name}\b", source), f"no test_hook_{name}"
