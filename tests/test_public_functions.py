"""Every public callable, called with wrong types and values (scikit-learn's habit).

The table is ``tests/_bad_inputs.py``; ``docs/errors.md`` is generated from it.
"""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from _bad_inputs import EXEMPT, ROWS, markdown

import captum_effnet as ce
from captum_effnet import attr, inspection, metrics, models, viz

ROOT = Path(__file__).resolve().parents[1]
MODULES = (ce, attr, inspection, metrics, models, viz)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.func}-{r.bad}" for r in ROWS])
def test_bad_input_raises_a_clear_error_naming_the_parameter(row):
    with pytest.raises(Exception) as info:
        row.call()
    err = info.value
    assert type(err) is row.exc or (
        isinstance(err, row.exc) and type(err).__module__.startswith("captum_effnet")
    ), f"{type(err).__name__}: {err}"
    assert f"'{row.param}'" in str(err), str(err)
    assert re.search(r"parameters? of \S+", str(err)) or "parameter" in str(err), str(err)


def _public_callables() -> set[str]:
    names = set()
    for module in MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            names.add(name)
            if inspect.isclass(obj) and not issubclass(obj, BaseException):
                for meth in dir(obj):  # public methods written here (not Captum's)
                    f = getattr(obj, meth)
                    if not meth.startswith("_") and callable(f) and \
                            getattr(f, "__module__", "").startswith("captum_effnet") and \
                            set(inspect.signature(f).parameters) - {"self", "cls"}:
                        names.add(f"{name}.{meth}")
    return names


def test_every_public_callable_is_in_the_table():
    covered = {r.func for r in ROWS} | set(EXEMPT)
    missing = sorted(_public_callables() - covered)
    assert not missing, f"public callables with no bad-input row: {missing}"
    assert not sorted({r.func for r in ROWS} - _public_callables())


def test_exempt_names_take_no_user_parameters():
    for name in ("list_attributions", "list_models", "list_plugins"):
        assert not inspect.signature(getattr(ce, name)).parameters
    for name in EXEMPT:
        obj = next(getattr(m, name) for m in MODULES if name in m.__all__)
        assert not isinstance(obj, types.FunctionType) or name.startswith("list_") or \
            name.startswith("hook"), name


def test_docs_errors_page_matches_the_table():
    page = (ROOT / "docs" / "errors.md").read_text()
    assert page == markdown(), "regenerate: python tests/_bad_inputs.py > docs/errors.md"
