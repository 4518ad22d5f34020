"""Benchmark: patch permutation importance, overhead and memory (CPU, run by hand).

Not a test: it prints tables, it asserts nothing. Run::

    python benchmarks/bench_permutation.py            # everything (a few minutes)
    python benchmarks/bench_permutation.py --quick    # skip pretrained lite0

1. scikit-learn path: wall time of ``permutation_importance`` with
   ``ImageClassifier`` divided by the time of the forward passes it cannot
   avoid: ``1 + n_patches * n_repeats`` passes over the images, batched like
   the estimator, under ``torch.inference_mode``, on ready-made tensors.
   Goal <= 1.1.
2. Captum path: ``PatchPermutation.attribute(..., n_repeats=R)`` divided by
   the time of Captum's ``FeaturePermutation`` with the same mask called
   ``R`` times (the plain-Captum way to average R permutations). Goal <= 1.0.
3. Memory: what a copy of ``X`` costs (pointers, not pixels), and the peak
   memory of both paths for growing ``n_repeats`` (goal: flat). Peak RSS is
   measured in a fresh child process per setting, as the rise of the
   process's high-water mark (``VmHWM``, reset through
   ``/proc/self/clear_refs``) over its resident size just before the call;
   ``tracemalloc`` adds the peak of Python/numpy allocations (it does not see
   torch's allocator).

Timings are the best of ``--rounds`` runs (default 3), alternating the two
sides of each ratio, so that a busy machine hurts both alike.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import torch
from captum.attr import FeaturePermutation
from sklearn.inspection import permutation_importance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import captum_effnet as ce  # noqa: E402
from captum_effnet.attr import PatchPermutation  # noqa: E402
from captum_effnet.attr._masks import patch_mask  # noqa: E402
from captum_effnet.inspection import ImageClassifier, to_patches  # noqa: E402


def _best(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _pair(fa: Callable[[], object], fb: Callable[[], object], rounds: int
          ) -> tuple[float, float]:
    """Best-of-rounds for two functions, run alternately."""
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(_best(fa, 1))
        tb.append(_best(fb, 1))
    return min(ta), min(tb)


def small_setup(resolution: int = 112, n: int = 16):
    torch.manual_seed(0)
    model = ce.efficientnet(-2, num_classes=10).eval()
    images = torch.rand(n, 3, resolution, resolution)
    return model, images, (lambda x: x), f"efficientnet(-2) {resolution}px, random weights"


def lite0_setup():
    from skimage import data
    from torchvision.transforms.functional import hflip, resize

    model = ce.get_model("efficientnet_lite0", weights="imagenet").eval()
    photos = []
    for name in ("coffee", "chelsea", "astronaut", "rocket"):
        rgb = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float() / 255
        photos.append(resize(rgb, [224, 224], antialias=True))
    images = torch.stack(photos + [hflip(p) for p in photos])
    return model, images, (lambda x: (x * 255 - 127) / 128), "lite0 224px, ImageNet weights"


def bench_sklearn(setup, grid: int, n_repeats: int, batch_size: int, rounds: int,
                  scoring="accuracy") -> dict:
    model, images, transform, label = setup
    X = to_patches(images, grid)
    est = ImageClassifier(model, grid=grid, transform=transform, batch_size=batch_size).fit(X)
    y = est.predict(X)
    n_passes = 1 + grid * grid * n_repeats
    label_scoring = scoring
    if scoring == "multi":  # predict and predict_proba on every X: two scorers, one cache
        from sklearn.metrics import log_loss, make_scorer

        scoring = {"accuracy": "accuracy",
                   "neg_log_loss": make_scorer(log_loss, greater_is_better=False,
                                               response_method="predict_proba",
                                               labels=est.classes_)}

    def unavoidable():
        with torch.inference_mode():
            for _ in range(n_passes):
                for s in range(0, len(images), batch_size):
                    model(transform(images[s:s + batch_size]))

    def ours():
        permutation_importance(est, X, y, scoring=scoring, n_repeats=n_repeats,
                               random_state=0)

    t_ref, t_ours = _pair(unavoidable, ours, rounds)
    return {"model": label, "images": len(images), "grid": f"{grid}x{grid}",
            "n_repeats": n_repeats, "scoring": "accuracy+log_loss" if label_scoring == "multi"
            else label_scoring, "forward_passes": n_passes,
            "t_forward_s": t_ref, "t_permutation_importance_s": t_ours,
            "ratio": t_ours / t_ref}


def bench_captum(setup, grid: int, n_repeats: int, rounds: int, ppe: int = 1) -> dict:
    model, images, transform, label = setup

    def forward(x):
        return model(transform(x))

    with torch.inference_mode():
        target = forward(images).argmax(1)
    mask = patch_mask(images.shape[-2:], grid)

    def captum():
        with torch.inference_mode():
            total = None
            for _ in range(n_repeats):
                a = FeaturePermutation(forward).attribute(
                    images, target=target, feature_mask=mask, perturbations_per_eval=ppe)
                total = a if total is None else total + a
            return total / n_repeats

    def ours():
        with torch.inference_mode():
            return PatchPermutation(forward).attribute(
                images, target=target, grid=grid, n_repeats=n_repeats,
                perturbations_per_eval=ppe)

    t_ref, t_ours = _pair(captum, ours, rounds)
    return {"model": label, "images": len(images), "grid": f"{grid}x{grid}",
            "n_repeats": n_repeats, "perturbations_per_eval": ppe,
            "t_FeaturePermutation_s": t_ref, "t_PatchPermutation_s": t_ours,
            "ratio": t_ours / t_ref}


# -- memory (child processes) ------------------------------------------------------------

def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _hwm_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def memory_child(path: str, n_repeats: int) -> dict:
    torch.set_num_threads(1)
    model, images, _, _ = small_setup(resolution=64, n=16)
    grid = 4
    if path == "sklearn":
        X = to_patches(images, grid)
        est = ImageClassifier(model, grid=grid, batch_size=16).fit(X)
        y = est.predict(X)

        def run():
            permutation_importance(est, X, y, n_repeats=n_repeats, random_state=0)
    else:
        target = model(images).argmax(1)

        def run():
            with torch.inference_mode():
                PatchPermutation(model).attribute(images, target=target, grid=grid,
                                                  n_repeats=n_repeats)
    run_small = run  # warm up allocator and caches with the same work
    run_small()
    gc.collect()
    base = _rss_kib()
    reset = _reset_hwm()
    tracemalloc.start()
    run()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"path": path, "n_repeats": n_repeats, "hwm_reset": reset,
            "peak_rss_rise_MiB": max(0, _hwm_kib() - base) / 1024,
            "tracemalloc_peak_MiB": traced_peak / 2**20}


def bench_memory(repeats: list[int]) -> list[dict]:
    rows = []
    for path in ("sklearn", "captum"):
        for r in repeats:
            out = subprocess.run(
                [sys.executable, __file__, "--memory-child", path, str(r)],
                capture_output=True, text=True, check=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def x_copy_costs(images: torch.Tensor, grid: int) -> dict:
    X = to_patches(images, grid)
    tracemalloc.start()
    Xc = X.copy()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del Xc
    return {"images": tuple(images.shape), "grid": f"{grid}x{grid}",
            "pixels_MiB": images.numel() * 4 / 2**20,
            "X.copy()_bytes": X.copy().nbytes, "X.copy()_traced_bytes": peak}


def _table(rows: list[dict], title: str) -> None:
    print(f"\n## {title}\n")
    keys = list(rows[0])
    fmt = [f"{{:{max(len(k), 8)}}}" for k in keys]

    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    print(" | ".join(f.format(k) for f, k in zip(fmt, keys, strict=True)))
    print(" | ".join("-" * max(len(k), 8) for k in keys))
    for row in rows:
        print(" | ".join(f.format(cell(row[k])) for f, k in zip(fmt, keys, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip pretrained lite0")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-child", nargs=2, metavar=("PATH", "N_REPEATS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child[0], int(args.memory_child[1]))))
        return

    t_start = time.perf_counter()
    print(f"# bench_permutation  python {platform.python_version()}  torch "
          f"{torch.__version__}  threads {torch.get_num_threads()}  cpus {os.cpu_count()}")
    setups = [small_setup()]
    if not args.quick:
        setups.append(lite0_setup())

    rows = [bench_sklearn(setups[0], grid=4, n_repeats=2, batch_size=16, rounds=args.rounds),
            bench_sklearn(setups[0], grid=4, n_repeats=2, batch_size=16, rounds=args.rounds,
                          scoring="multi")]
    if len(setups) > 1:
        rows.append(bench_sklearn(setups[1], grid=4, n_repeats=1, batch_size=8,
                                  rounds=args.rounds))
    _table(rows, "scikit-learn permutation_importance / unavoidable forward passes "
                 "(goal <= 1.1)")

    rows = [bench_captum(setups[0], grid=4, n_repeats=reps, rounds=args.rounds)
            for reps in (1, 3)]
    if len(setups) > 1:
        rows.append(bench_captum(setups[1], grid=4, n_repeats=2, rounds=args.rounds))
    _table(rows, "PatchPermutation / Captum FeaturePermutation, same mask (goal <= 1.0)")

    _table([x_copy_costs(setups[-1][1], 4)], "Cost of copying X (what permutation_importance "
                                              "does per column)")
    _table(bench_memory([1, 4, 16]), "Peak memory vs n_repeats (efficientnet(-2) at 64px, "
                                     "16 images, 4x4 grid; goal: flat)")
    print(f"\n(total {time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
