"""EfficientNet-Lite building blocks, plugged into torchvision's ``EfficientNet``.

EfficientNet-Lite (the official ``efficientnet/lite`` builder) differs from B0
in three ways: no squeeze-and-excitation, ReLU6 instead of SiLU, and a stem
(32 channels) and head (1280 channels) that are not scaled. Its published
weights were trained in TensorFlow with ``"SAME"`` padding, which for a
stride-2 convolution pads one pixel *after* the input (bottom/right) rather
than one on each side; :class:`Conv2dSame` reproduces that so the converted
weights give the reference logits. Stride-1 convolutions with odd kernels pad
symmetrically in both frameworks and stay plain :class:`torch.nn.Conv2d`.

:class:`LiteMBConv` has the constructor torchvision's ``EfficientNet`` expects
of a block (``block(cnf, stochastic_depth_prob, norm_layer)``), so a Lite model
is an ordinary ``torchvision.models.EfficientNet`` built from
``MBConvConfig(..., block=LiteMBConv)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.efficientnet import MBConvConfig
from torchvision.ops import StochasticDepth

__all__ = ["Conv2dSame", "LiteMBConv", "conv_bn_act", "same_padding"]


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow ``"SAME"`` padding ``(before, after)`` for one spatial dimension.

    The output size is ``ceil(size / stride)``; any odd extra pixel goes after.

    Examples
    --------
    >>> same_padding(224, 3, 2), same_padding(224, 5, 2), same_padding(225, 3, 2)
    ((0, 1), (1, 2), (1, 1))
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """A :class:`torch.nn.Conv2d` with TensorFlow ``"SAME"`` padding.

    The padding is computed from each input's size, so any resolution works;
    ``padding`` given to the constructor is ignored. Parameters and
    ``state_dict`` keys are those of :class:`torch.nn.Conv2d`.

    Examples
    --------
    >>> conv = Conv2dSame(1, 1, 3, stride=2, bias=False)
    >>> conv(torch.zeros(1, 1, 224, 224)).shape
    torch.Size([1, 1, 112, 112])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, padding: object = 0, dilation: int = 1, groups: int = 1,
                 bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups,
                         bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        pw = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        if any(ph) or any(pw):
            x = F.pad(x, [pw[0], pw[1], ph[0], ph[1]])
        return super().forward(x)


def conv_bn_act(in_channels: int, out_channels: int, kernel: int, *, stride: int = 1,
                groups: int = 1, norm_layer: Callable[..., nn.Module],
                activation: bool = True) -> nn.Sequential:
    """``Sequential(conv, norm[, ReLU6])`` with TF "SAME" padding on strided convs.

    Keys and indices match torchvision's ``Conv2dNormActivation`` (``0`` conv,
    ``1`` norm, ``2`` activation).
    """
    conv: nn.Conv2d
    if stride > 1:
        conv = Conv2dSame(in_channels, out_channels, kernel, stride, groups=groups, bias=False)
    else:
        conv = nn.Conv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2,
                         groups=groups, bias=False)
    layers: list[nn.Module] = [conv, norm_layer(out_channels)]
    if activation:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class LiteMBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation, with ReLU6.

    ``block`` holds ``[expand,] depthwise, project`` (expand only when the
    expansion changes the width), mirroring torchvision's ``MBConv`` layout
    minus its SE layer; the residual (with stochastic depth) is used when the
    stride is 1 and the widths agree.

    Parameters
    ----------
    cnf : torchvision.models.efficientnet.MBConvConfig
        Kernel, stride, expansion and channel counts.
    stochastic_depth_prob : float
        Probability of dropping the residual branch during training.
    norm_layer : callable
        Normalisation layer factory (``BatchNorm2d`` with eps 1e-3 for Lite).
    """

    def __init__(self, cnf: MBConvConfig, stochastic_depth_prob: float,
                 norm_layer: Callable[..., nn.Module]) -> None:
        super().__init__()
        stride, kernel = int(cnf.stride), int(cnf.kernel)
        if stride not in (1, 2):
            raise ValueError(f"The 'stride' of a LiteMBConv block must be 1 or 2. Got {stride}.")
        c_in, c_out = int(cnf.input_channels), int(cnf.out_channels)
        expanded = int(cnf.adjust_channels(c_in, cnf.expand_ratio))
        layers: list[nn.Module] = []
        if expanded != c_in:
            layers.append(conv_bn_act(c_in, expanded, 1, norm_layer=norm_layer))
        layers.append(conv_bn_act(expanded, expanded, kernel, stride=stride, groups=expanded,
                                  norm_layer=norm_layer))
        layers.append(conv_bn_act(expanded, c_out, 1, norm_layer=norm_layer, activation=False))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and c_in == c_out
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")
        self.out_channels = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out) + x
        return out

