"""Exercises of ``notebooks/06_mtl.ipynb``."""
from __future__ import annotations

import torch

from ..models.scale_shift import ss_conv2d
from .core import exercise


def _ss_cases():
    g = torch.Generator().manual_seed(1812)
    cases = []
    for n, c_in, c_out, size, spread in ((1, 1, 2, 5, 0.0), (2, 3, 4, 7, 1.0), (3, 8, 16, 6, 2.0)):
        x = torch.randn(n, c_in, size, size, generator=g)
        weight, bias = torch.randn(c_out, c_in, 3, 3, generator=g), torch.randn(c_out, generator=g)
        scale = 1 + spread * torch.randn(c_out, generator=g)  # spread 0: the initial Φ (scale 1, shift 0)
        shift = spread * torch.randn(c_out, generator=g)
        cases.append((x, weight, bias, scale, shift))
    return cases


@exercise("ss_conv2d", "the scale-and-shift convolution (W ⊙ Φ_S1) X + (b + Φ_S2), 3×3, padding 1", _ss_cases)
def ss_conv_reference(x, weight, bias, scale, shift) -> torch.Tensor:
    """``(n, C_out, H, W)`` for ``x (n, C_in, H, W)``, ``weight (C_out, C_in, 3, 3)``, ``bias, scale, shift (C_out,)``."""
    return ss_conv2d(x, weight, bias, scale, shift, padding=1)
