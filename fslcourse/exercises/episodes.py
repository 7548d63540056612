"""Exercises of ``notebooks/01_episodes.ipynb``."""
from __future__ import annotations

import torch

from ..methods.base import prototypes
from .core import exercise


def _prototype_cases():
    g = torch.Generator().manual_seed(1234)
    cases = []
    for n_way, n_shot, dim in ((2, 1, 3), (5, 5, 16), (3, 4, 784)):
        labels = torch.arange(n_way).repeat_interleave(n_shot)
        perm = torch.randperm(len(labels), generator=g)  # shuffled: order must not matter
        cases.append((torch.randn(len(labels), dim, generator=g), labels[perm], n_way))
    return cases


@exercise("prototypes", "class means of the support features", _prototype_cases)
def prototypes_reference(features: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """``(n_way, D)`` mean of the ``(n_support, D)`` features of each class."""
    return prototypes(features, labels, n_way)
