"""Grad-CAM cost ratios on EfficientNet-B0 (CPU), measured side by side in one run.

For each batch size and for two layers (the last block, where the exact
GAP + linear shortcut applies, and a middle block, which takes the autograd
path), prints the median time of

- ``ours``      : ``captum_effnet.attr.GradCam`` (one class per sample, default
                  settings: ReLU, bilinear upsampling to 224x224);
- ``ours top-5``: the same with ``top_k=5`` (five maps per sample);
- ``forward``   : one ``torch.inference_mode`` forward of the same batch;
- ``captum``    : ``captum.attr.LayerGradCam(..., relu_attributions=True)``;
- ``grad-cam``  : PyPI grad-cam's ``pytorch_grad_cam.GradCAM`` (constructed and
                  released per call, as its hooks stay on the model while it lives);
- ``minimum``   : hand-written: forward with autograd, a hook keeping the layer
                  output, ``torch.autograd.grad`` of the summed target scores to
                  it, and the weighted channel sum;

and our time divided by each, plus peak memory (resident-set high-water mark
above the level before the call, reset between methods through
``/proc/self/clear_refs``; Linux only). Methods are interleaved round by round
so that load from other processes hits them alike. Random weights (timing does
not depend on them; nothing is downloaded).

Run: ``python benchmarks/bench_gradcam.py [--batch 8 32] [--repeats 5] [--threads 1]``
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import re
import statistics
import time
from collections.abc import Callable

import torch
import torchvision
from captum.attr import LayerGradCam

from captum_effnet.attr import GradCam


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            m = re.search(rf"{field}:\s+(\d+)", fh.read())
        return int(m.group(1)) if m else None
    except OSError:
        return None


def _trim() -> None:
    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_mib(fn: Callable[[], object]) -> float | None:
    """Peak resident memory of one call above the level just before it."""
    _trim()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current RSS
    except OSError:
        return None
    before = _rss_kib("VmRSS")
    out = fn()
    peak = _rss_kib("VmHWM")
    del out
    if before is None or peak is None:
        return None
    return (peak - before) / 1024


def methods(net: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor,
            target: torch.Tensor) -> dict[str, Callable[[], object]]:
    ours = GradCam(net, layer)
    captum = LayerGradCam(net, layer)
    rows = torch.arange(len(x))

    def forward():
        with torch.inference_mode():
            return net(x)

    def pgc():
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        with GradCAM(model=net, target_layers=[layer]) as cam:
            out = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target])
        net.zero_grad(set_to_none=True)
        return out

    def minimum():
        kept = []
        handle = layer.register_forward_hook(lambda m, i, o: kept.append(o))
        try:
            y = net(x)
        finally:
            handle.remove()
        a = kept[0]
        g, = torch.autograd.grad(y[rows, target].sum(), a)
        return torch.relu((g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True)).detach()

    return {
        "ours": lambda: ours.attribute(x, target=target),
        "ours top-5": lambda: ours.attribute(x, top_k=5),
        "forward": forward,
        "captum": lambda: captum.attribute(x, target=target, relu_attributions=True).detach(),
        "grad-cam": pgc,
        "minimum": minimum,
    }


def run(batch: int, size: int, repeats: int, mid: int) -> list[str]:
    torch.manual_seed(0)
    net = torchvision.models.efficientnet_b0().eval()
    x = torch.randn(batch, 3, size, size)
    target = torch.randint(0, 1000, (batch,))
    layers = {"features[-1] (shortcut)": net.features[-1],
              f"features[{mid}] (autograd)": net.features[mid]}
    lines = [f"EfficientNet-B0, {size}x{size}, batch {batch}, {torch.get_num_threads()} "
             f"thread(s), median of {repeats} interleaved rounds"]
    goals = []
    for name, layer in layers.items():
        fns = methods(net, layer, x, target)
        for fn in fns.values():  # warm-up (kernel caches, our one-off head probe)
            fn()
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(repeats):
            for key, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        mem = {k: peak_mib(fn) for k, fn in fns.items()}
        ours = med["ours"]
        lines.append(f"  layer {name}")
        lines.append(f"    {'method':<12}{'median s':>10}{'ours/it':>9}{'peak MiB':>10}")
        for key in fns:
            ratio = ours / med[key]
            m = "n/a" if mem[key] is None else f"{mem[key]:.0f}"
            lines.append(f"    {key:<12}{med[key]:>10.3f}{ratio:>9.2f}{m:>10}")
        lines.append(f"    top-5 / one class: {med['ours top-5'] / ours:.2f}")
        if "shortcut" in name:
            goals.append(("last layer / inference forward <= 1.10", ours / med["forward"], 1.10))
            goals.append(("last layer top-5 / one class <= 1.10",
                          med["ours top-5"] / ours, 1.10))
        else:
            goals.append(("other layer / hand-written minimum <= 1.05",
                          ours / med["minimum"], 1.05))
        goals.append((f"peak memory {name} / captum <= 1.00",
                       None if mem["ours"] is None or mem["captum"] is None
                       else mem["ours"] / max(mem["captum"], 1e-9), 1.0))
        lines.append(f"    captum / minimum: {med['captum'] / med['minimum']:.2f}   "
                     f"grad-cam / minimum: {med['grad-cam'] / med['minimum']:.2f}")
    lines.append("  goals:")
    for text, value, bound in goals:
        if value is None:
            lines.append(f"    {text}: n/a")
        else:
            verdict = "met" if value <= bound else "NOT met"
            lines.append(f"    {text}: {value:.2f} ({verdict})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--mid", type=int, default=5,
                        help="index of the middle feature block timed on the autograd path")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU")
    for batch in args.batch:
        print("\n".join(run(batch, args.size, args.repeats, args.mid)))


if __name__ == "__main__":
    main()
