"""Build time of every named variant against its peer's builder, and profile() time.

Peers: torchvision's builders for B0..B7 and V2-S/M/L, ``efficientnet_lite_pytorch``'s
``EfficientNet.from_name`` for Lite0..Lite4 (random initialisation everywhere, CPU).
Runs are interleaved (ours, peer, ours, peer, ...) and the ratio is of the fastest run of
each (other processes only ever add time), so machine load affects both sides alike. Goal: ratio <= 1.1.

    python benchmarks/bench_factory.py [--repeats 5] [--threads 1] [--names efficientnet_b0 ...]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import torch
import torchvision

from captum_effnet.models import BUILTIN_MODELS, profile


def _peer(name: str):
    if "lite" in name:
        from efficientnet_lite_pytorch import EfficientNet

        return "efficientnet_lite_pytorch", lambda: EfficientNet.from_name(name.replace("_", "-"))
    return "torchvision", getattr(torchvision.models, name)


def _seconds(build) -> float:
    gc.collect()
    start = time.perf_counter()
    model = build()
    elapsed = time.perf_counter() - start
    del model
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--names", nargs="+", default=list(BUILTIN_MODELS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for name in args.names:
        ours = BUILTIN_MODELS[name][0]
        peer_name, peer = _peer(name)
        _seconds(ours), _seconds(peer)  # warm-up (imports, allocator)
        t_ours, t_peer = [], []
        for _ in range(args.repeats):
            t_ours.append(_seconds(ours))
            t_peer.append(_seconds(peer))
        start = time.perf_counter()
        p = profile(name)
        t_profile = time.perf_counter() - start
        ours_ms, peer_ms = min(t_ours) * 1e3, min(t_peer) * 1e3
        rows.append((name, peer_name, f"{ours_ms:.0f}", f"{peer_ms:.0f}", f"{ours_ms / peer_ms:.2f}",
                     f"{t_profile * 1e3:.0f}", f"{p.params:,}", f"{p.gmacs:.3f}"))

    header = ("model", "peer", "build ms (min)", "peer ms (min)", "ratio", "profile ms", "params", "GMACs")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).rjust(w) if i >= 2 else str(c).ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    ratios = [float(r[4]) for r in rows]
    print(f"\nmedian ratio {statistics.median(ratios):.2f}, max {max(ratios):.2f} "
          f"(repeats={args.repeats}, threads={args.threads}, torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}); profile() runs on the meta device at the "
          "published resolution")


if __name__ == "__main__":
    main()
