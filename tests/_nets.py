"""Helpers shared by the attribution tests: calibrated random nets, hook checks."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules import module as torch_module


def calibrated(net: nn.Module, images: torch.Tensor | None = None, *, size: int = 64,
               seed: int = 0, n: int = 3) -> nn.Module:
    """Random weights with batch-norm statistics set from ``images`` (sane activations).

    Without ``images``, ``n`` seeded random images of ``size`` x ``size`` are used.
    """
    if images is None:
        torch.manual_seed(seed)
        images = torch.randn(n, 3, size, size)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: the statistics of exactly these images
    net.train()
    with torch.no_grad():
        net(images)
    return net.eval()


def no_hooks(model: nn.Module) -> bool:
    """No hook left on any submodule, and no global module hook."""
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        and not m._backward_pre_hooks
        for m in model.modules()
    ) and not torch_module._global_forward_hooks and not torch_module._global_forward_pre_hooks
