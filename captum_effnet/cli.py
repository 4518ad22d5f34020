"""The ``captum-effnet`` command.

Subcommands
-----------
``models``   the registered models: parameters, resolution, weights, plugin.
``plugins``  the loaded plugins (and any that failed to load).
``scale``    the compound-scaling table for a list of φ values.

Errors print one line on stderr and exit with status 1; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from . import _plugins
from ._version import __version__

__all__ = ["main"]


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def _emit(rows: list[dict[str, Any]], columns: Sequence[str], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(rows, indent=2, default=str))
    else:
        print(_table(rows, columns))


def _count_params(name: str) -> int | None:
    import torch

    try:
        with torch.device("meta"):
            model = _plugins.get_model(name)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # a plugin model that cannot be built on the meta device
        return None


def _cmd_models(args: argparse.Namespace) -> int:
    rows = []
    for entry in _plugins._iter_entries("model"):
        info = dict(entry.info)
        params = _count_params(entry.name) if not args.no_params else None
        weights = info.get("weights") or ()
        rows.append({
            "name": entry.name,
            "params": f"{params:,}" if params is not None else "?",
            "resolution": info.get("resolution", "?"),
            "weights": ", ".join(map(str, weights)) or "-",
            "plugin": entry.plugin,
        })
    _emit(rows, ["name", "params", "resolution", "weights", "plugin"], args.format)
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = [
        {"name": p.name, "distribution": p.distribution, "version": p.version, "status": "loaded"}
        for p in _plugins.list_plugins()
    ]
    rows += [
        {"name": n, "distribution": d, "version": "", "status": f"FAILED {problem}"}
        for n, d, problem in _plugins.plugin_failures()
    ]
    _emit(rows, ["name", "distribution", "version", "status"], args.format)
    return 1 if _plugins.plugin_failures() else 0


def _cmd_scale(args: argparse.Namespace) -> int:
    from .models import scale_table

    rows = scale_table(args.phi, alpha=args.alpha, beta=args.beta, gamma=args.gamma)
    columns = list(rows[0]) if rows else []
    _emit(rows, columns, args.format)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captum-effnet",
        description="EfficientNet models and explanations for Captum and scikit-learn.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    fmt = argparse.ArgumentParser(add_help=False)
    fmt.add_argument("--format", choices=("text", "json"), default="text",
                     help="output format (default: text)")

    p = sub.add_parser("models", parents=[fmt], help="list the registered models")
    p.add_argument("--no-params", action="store_true",
                   help="skip counting parameters (faster)")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("plugins", parents=[fmt], help="list the loaded plugins")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser("scale", parents=[fmt],
                       help="compound-scaling table: depth, width, resolution, cost per phi")
    p.add_argument("--phi", type=float, nargs="+", default=[-2, -1, 0, 1, 2, 3],
                   help="compound coefficients to tabulate (default: -2 -1 0 1 2 3)")
    p.add_argument("--alpha", type=float, default=1.2, help="depth base (default 1.2)")
    p.add_argument("--beta", type=float, default=1.1, help="width base (default 1.1)")
    p.add_argument("--gamma", type=float, default=1.15, help="resolution base (default 1.15)")
    p.set_defaults(func=_cmd_scale)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Examples
    --------
    >>> main(["plugins", "--format", "json"])  # doctest: +ELLIPSIS
    [
      {
        "name": "builtin",
    ...
    0
    """
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("captum-effnet: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        else:
            print(f"captum-effnet: error: {exc} (use --debug for the traceback)",
                  file=sys.stderr)
        return 1
