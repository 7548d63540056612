"""Scale-and-shift (SS) convolutions: two learnable numbers per filter on a frozen convolution.

Taught in ``notebooks/06_mtl.ipynb``; used by :mod:`fslcourse.methods.mtl`.

Sun, Liu, Chua & Schiele (2019), "Meta-Transfer Learning for Few-Shot Learning",
arXiv:1812.02391. A frozen convolution with weights ``W`` (``(C_out, C_in, k, k)``)
and bias ``b`` (``(C_out,)``) gets a per-filter scale ``Φ_S1`` (``(C_out,)``,
initialised to 1) and shift ``Φ_S2`` (``(C_out,)``, initialised to 0):

    SS(X; W, b; Φ) = (W ⊙ Φ_S1) X + (b + Φ_S2)

``W`` and ``b`` are never written to: the wrapper builds the scaled weight on
the fly, so fine-tuning touches ``2 * C_out`` numbers per layer instead of
``C_out * C_in * k * k`` (plus ``C_out`` for a convolution with a bias; the course's ResNet has none).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def ss_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, scale: torch.Tensor,
              shift: torch.Tensor, stride=1, padding=0, dilation=1, groups: int = 1) -> torch.Tensor:
    """The SS convolution ``(W ⊙ Φ_S1) X + (b + Φ_S2)``.

    Args:
        x: ``(n, C_in, H, W)`` input.
        weight: ``(C_out, C_in / groups, k, k)`` frozen filters ``W``.
        bias: ``(C_out,)`` frozen bias ``b``, or ``None`` (treated as 0).
        scale: ``(C_out,)`` per-filter scale ``Φ_S1``.
        shift: ``(C_out,)`` per-filter shift ``Φ_S2``.
        stride, padding, dilation, groups: as :func:`torch.nn.functional.conv2d`.

    Returns:
        ``(n, C_out, H', W')`` output.
    """
    if scale.shape != (weight.shape[0],) or shift.shape != (weight.shape[0],):
        raise ValueError(f"scale {tuple(scale.shape)} and shift {tuple(shift.shape)} must both be "
                         f"({weight.shape[0]},), one number per filter of the convolution")
    scaled = weight * scale.view(-1, 1, 1, 1)  # (C_out, C_in / groups, k, k): filter i times Φ_S1[i]
    new_bias = shift if bias is None else bias + shift  # (C_out,)
    return F.conv2d(x, scaled, new_bias, stride, padding, dilation, groups)


class ScaleShiftConv2d(nn.Module):
    """A frozen :class:`torch.nn.Conv2d` plus learnable per-filter scale and shift.

    Args:
        conv: the convolution to wrap; its parameters are set to ``requires_grad=False``
            and are only read.

    Attributes:
        conv: the frozen convolution (``W``, ``b``).
        scale: ``(C_out,)`` parameter ``Φ_S1``, initialised to ones.
        shift: ``(C_out,)`` parameter ``Φ_S2``, initialised to zeros.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if not isinstance(conv, nn.Conv2d) or conv.padding_mode != "zeros":
            raise ValueError(f"ScaleShiftConv2d wraps an nn.Conv2d with zero padding, got {conv!r}")
        self.conv = conv.requires_grad_(False)
        self.scale = nn.Parameter(torch.ones(conv.out_channels, device=conv.weight.device))
        self.shift = nn.Parameter(torch.zeros(conv.out_channels, device=conv.weight.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, C_in, H, W) -> (n, C_out, H', W')``."""
        c = self.conv
        return ss_conv2d(x, c.weight, c.bias, self.scale, self.shift, c.stride, c.padding, c.dilation, c.groups)


def add_scale_shift(module: nn.Module) -> nn.Module:
    """Replace every :class:`~torch.nn.Conv2d` inside ``module`` by a :class:`ScaleShiftConv2d` (in place).

    Every other parameter of ``module`` is frozen too (``requires_grad=False``), so
    the only trainable parameters left are the scales and shifts.

    Returns:
        ``module``, for chaining.
    """
    module.requires_grad_(False)
    convs = [(name, m) for name, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(module).__name__} has no nn.Conv2d to scale and shift")
    for name, conv in convs:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, ScaleShiftConv2d(conv))
    return module


def scale_shift_layers(module: nn.Module) -> dict[str, ScaleShiftConv2d]:
    """The SS layers of ``module`` by name, in forward order."""
    return {name: m for name, m in module.named_modules() if isinstance(m, ScaleShiftConv2d)}
