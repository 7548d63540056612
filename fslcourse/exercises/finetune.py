"""Exercises of ``notebooks/04_finetune_baseline.ipynb``."""
from __future__ import annotations

import torch

from ..methods.finetune import entropy_regulariser
from .core import exercise


def _entropy_cases():
    g = torch.Generator().manual_seed(2020)
    return [(torch.zeros(1, 2),), (torch.randn(10, 5, generator=g) * 3,), (torch.randn(4, 20, generator=g) * 30,)]


@exercise("entropy_regulariser", "mean entropy of the softmax predictions (nats)", _entropy_cases)
def entropy_reference(logits: torch.Tensor) -> torch.Tensor:
    """Scalar tensor: mean over rows of ``-sum_k p_k log p_k`` with ``p = softmax(logits)``, logits ``(n, n_way)``."""
    return entropy_regulariser(logits)
