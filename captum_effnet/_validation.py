"""Parameter checks with one message form, shared by every public callable.

The message form follows scikit-learn's ``validate_params``::

    The 'n_repeats' parameter of permutation_importance must be an int in the
    range [1, inf). Got 0 instead.

Wrong types raise :class:`TypeError`, wrong values :class:`ValueError`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import Any

__all__ = [
    "check_choice",
    "check_int",
    "check_real",
    "check_type",
    "describe",
    "param_error",
    "suggest",
]


def describe(value: Any) -> str:
    """A short description of a value for error messages (tensors by shape and dtype).

    Examples
    --------
    >>> import torch
    >>> describe(torch.zeros(2, 3))
    'a tensor of shape (2, 3) and dtype torch.float32'
    >>> describe(list(range(100)))
    'list [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 1...'
    """
    if type(value).__name__ == "Tensor" and hasattr(value, "shape"):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    if len(text) > 80:
        text = f"{type(value).__name__} {text[:60]}..."
    return text


def param_error(
    name: str, func: str, expected: str, value: Any, *, exc: type[Exception] = ValueError
) -> Exception:
    """Build (not raise) an error in the project's message form.

    Examples
    --------
    >>> str(param_error("grid", "to_patches", "a pair of positive ints", (0, 2)))
    "The 'grid' parameter of to_patches must be a pair of positive ints. Got (0, 2) instead."
    """
    got = describe(value)
    return exc(f"The {name!r} parameter of {func} must be {expected}. Got {got} instead.")


def check_type(value: Any, types: type | tuple[type, ...], *, name: str, func: str,
               expected: str | None = None) -> Any:
    """Raise :class:`TypeError` unless ``isinstance(value, types)``; return ``value``."""
    if not isinstance(value, types):
        if expected is None:
            tup = types if isinstance(types, tuple) else (types,)
            expected = "an instance of " + " or ".join(repr(t.__name__) for t in tup)
        raise param_error(name, func, expected, value, exc=TypeError)
    return value


def _range_text(low: float | None, high: float | None, closed: str) -> str:
    left = "[" if closed in ("both", "left") and low is not None else "("
    right = "]" if closed in ("both", "right") and high is not None else ")"
    lo = "-inf" if low is None else repr(low)
    hi = "inf" if high is None else repr(high)
    return f"{left}{lo}, {hi}{right}"


def check_int(value: Any, *, name: str, func: str, low: int | None = None,
              high: int | None = None) -> int:
    """Check an integer (bools refused) in ``[low, high]``; return it as ``int``.

    Examples
    --------
    >>> check_int(3, name="n_repeats", func="f", low=1)
    3
    >>> check_int(0, name="n_repeats", func="f", low=1)
    Traceback (most recent call last):
    ...
    ValueError: The 'n_repeats' parameter of f must be an int in the range [1, inf). Got 0 instead.
    """
    expected = f"an int in the range {_range_text(low, high, 'both')}"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise param_error(name, func, expected, value, exc=TypeError)
    if (low is not None and value < low) or (high is not None and value > high):
        raise param_error(name, func, expected, value)
    return int(value)


def check_real(value: Any, *, name: str, func: str, low: float | None = None,
               high: float | None = None, closed: str = "both") -> float:
    """Check a finite real number in a range; return it as ``float``.

    ``closed`` is one of ``"both"``, ``"left"``, ``"right"``, ``"neither"``.

    Examples
    --------
    >>> check_real(0.0, name="alpha", func="efficientnet", low=0.0, closed="neither")
    Traceback (most recent call last):
    ...
    ValueError: The 'alpha' parameter of efficientnet must be a finite real number in the
    range (0.0, inf). Got 0.0 instead.
    """
    expected = f"a finite real number in the range {_range_text(low, high, closed)}"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise param_error(name, func, expected, value, exc=TypeError)
    v = float(value)
    bad = not math.isfinite(v)
    if low is not None:
        bad |= v < low or (v == low and closed not in ("both", "left"))
    if high is not None:
        bad |= v > high or (v == high and closed not in ("both", "right"))
    if bad:
        raise param_error(name, func, expected, value)
    return v


def suggest(value: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Closest names to ``value`` among ``choices`` (for "did you mean")."""
    return difflib.get_close_matches(str(value), list(choices), n=n, cutoff=0.5)


def check_choice(value: Any, choices: Sequence[Any], *, name: str, func: str) -> Any:
    """Raise :class:`ValueError` unless ``value`` is one of ``choices``.

    The message lists every valid choice, and the closest ones first when the
    value is a misspelt string.

    Examples
    --------
    >>> check_choice("gradcm", ["gradcam", "gradcam++"], name="method", func="f")
    Traceback (most recent call last):
    ...
    ValueError: The 'method' parameter of f must be one of 'gradcam', 'gradcam++'
    (did you mean 'gradcam' or 'gradcam++'?). Got 'gradcm' instead.
    """
    try:
        ok = value in choices
    except TypeError:
        ok = False
    if not ok:
        listed = ", ".join(repr(c) for c in choices)
        close = suggest(value, [str(c) for c in choices]) if isinstance(value, str) else []
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise param_error(name, func, f"one of {listed}{hint}", value)
    return value
