"""The ``captum-effnet`` command.

Subcommands
-----------
``models``   the registered models: parameters, resolution, weights, plugin.
``plugins``  the loaded plugins (and any that failed to load).
``scale``    the compound-scaling table for a list of φ values.
``explain``  explain image files: overlay PNGs and JSON records.
``demo``     explain scikit-image's sample photos with pretrained lite0.

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


METHOD_TITLES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++",
                 "permutation": "patch permutation"}
DEMO_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def _progress(items: list[Any], show: bool, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(items, desc=desc, disable=not show or None, file=sys.stderr, leave=False)


def _cmd_explain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ._explain import Explainer, expand_images, load_image
    from .viz import overlay

    if args.top_k < 1:
        raise ValueError(f"The '--top-k' option must be an int >= 1. Got {args.top_k} instead.")
    paths = expand_images(args.images)
    if args.weights is None:  # the embedded default for lite0, random init otherwise
        args.weights = "imagenet" if args.model == "efficientnet_lite0" else None
    elif args.weights.lower() == "none":
        args.weights = None
    explainer = Explainer(args.model, args.weights, args.device)
    explainer.check_request([args.method], args.target)  # one error, not one per image
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in _progress(paths, len(paths) > 1, "explaining"):
        try:
            image = load_image(path)
            (res,) = explainer.explain([image], [path.name], methods=[args.method],
                                       target=args.target, top_k=args.top_k)
            record = {"model": args.model, "weights": args.weights, "method": args.method,
                      **res.record()}
            t = res.target
            title = (f"{t['label'].split(',')[0]} ({t['probability']:.1%}) - "
                     f"{METHOD_TITLES.get(args.method, args.method)}")
            fig, _ = overlay(res.image, res.maps[args.method], title=title)
            png = out / f"{path.stem}_{args.method}.png"
            fig.savefig(png, dpi=110, bbox_inches="tight")
            record["outputs"] = {"png": str(png), "json": str(out / f"{path.stem}.json")}
            (out / f"{path.stem}.json").write_text(json.dumps(record, indent=2))
        except (OSError, ValueError, TypeError) as exc:
            if args.debug:
                traceback.print_exc()
            print(f"captum-effnet: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        if args.format == "json":
            print(json.dumps(record))
        else:
            top = res.top_k[0]
            print(f"{path}: {top['label'].split(',')[0]} {top['probability']:.1%}; "
                  f"{args.method} map of {t['label'].split(',')[0]!r} -> {png}")
    return 1 if failed else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from PIL import Image

    from ._explain import Explainer, write_report

    try:
        from skimage import data
    except ImportError as exc:
        raise ImportError("the demo photos come from scikit-image, which is not installed. "
                          "Install with `pip install 'captum-effnet[demo]'`") from exc
    explainer = Explainer("efficientnet_lite0", "imagenet", args.device)
    images = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in DEMO_PHOTOS]
    results = explainer.explain(images, list(DEMO_PHOTOS), methods=list(METHOD_TITLES),
                                top_k=5)
    files = write_report(results, Path(args.out), title="captum_effnet demo",
                         method_titles=METHOD_TITLES, model="efficientnet_lite0",
                         weights="imagenet")
    for res in results:
        top = res.top_k[0]
        print(f"{res.name}: {top['label'].split(',')[0]} ({top['probability']:.1%})")
    print(f"report: {files['html']}")
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

    p = sub.add_parser("explain", parents=[fmt],
                       help="explain image files: overlay PNGs and JSON records")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    p.add_argument("--model", default="efficientnet_lite0",
                   help="registered model name (default: efficientnet_lite0)")
    p.add_argument("--weights", default=None,
                   help="weights for the model: a name (e.g. DEFAULT), a checkpoint path, "
                        "or 'none' (default: imagenet for efficientnet_lite0, shipped "
                        "offline; none for other models)")
    p.add_argument("--method", default="gradcam",
                   help="attribution method: gradcam, gradcam++, permutation, ... "
                        "(see `captum-effnet plugins`)")
    p.add_argument("--target", default="top1",
                   help="'top1', a class index, or a class name (default: top1)")
    p.add_argument("--top-k", type=int, default=5, help="predictions to record (default 5)")
    p.add_argument("--out", default="captum_effnet_out", help="output folder")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser("demo", help="explain scikit-image's sample photos with "
                                    "pretrained lite0 and write an HTML report")
    p.add_argument("--out", default="captum_effnet_out/demo", help="output folder")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.set_defaults(func=_cmd_demo)
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
