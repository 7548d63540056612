"""Exercises of ``notebooks/06_mtl.ipynb``."""
from __future__ import annotations

import torch

from ..methods.mtl import failure_classes
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


def _failure_cases():
    g = torch.Generator().manual_seed(2019)
    cases = []
    for n_way, n_query in ((3, 2), (5, 3), (5, 1), (4, 4)):
        query_y = torch.arange(n_way).repeat_interleave(n_query)
        logits = torch.randn(len(query_y), n_way, generator=g)
        logits[torch.arange(len(query_y)), query_y] += 2.0  # mostly right: several classes tie at full accuracy
        classes = torch.randperm(100, generator=g)[:n_way]  # ids in the split, not positions in the task
        cases.append((logits, query_y, classes))
    tie = torch.tensor([[3.0, 0.0], [0.0, 0.5], [2.0, 0.0], [0.0, 5.0]])  # both classes right once, wrong once
    cases.append((tie, torch.tensor([0, 0, 1, 1]), torch.tensor([7, 9])))  # the loss decides
    # the same tie mirrored: the answer is the first class, so "the last of the tied" fails one of the two
    cases.append((tie.flip(1), torch.tensor([1, 1, 0, 0]), torch.tensor([7, 9])))
    # accuracy first: class 7 is half wrong with a small loss, class 9 all right with a larger one
    cases.append((torch.tensor([[5.0, 0.0], [0.0, 0.1], [0.0, 0.1], [0.0, 0.1]]), torch.tensor([0, 0, 1, 1]),
                  torch.tensor([7, 9])))
    return cases


@exercise("mtl_failure_class", "the id of a task's failure class: lowest query accuracy, ties broken by the higher "
          "mean query loss", _failure_cases)
def failure_class_reference(logits: torch.Tensor, query_y: torch.Tensor, classes: torch.Tensor) -> int:
    """:func:`fslcourse.methods.mtl.failure_classes` as a Python int."""
    return int(failure_classes(logits, query_y, classes))
