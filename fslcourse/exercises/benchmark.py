"""Exercises of ``notebooks/11_benchmark.ipynb``: confidence intervals from per-episode accuracies."""
from __future__ import annotations

import torch

from ..evaluate import mean_ci95
from .core import exercise


def _paired_cases():
    g = torch.Generator().manual_seed(909)
    cases = []
    for n, p_a, p_b in ((2, 0.9, 0.8), (50, 0.97, 0.95), (200, 0.7, 0.75), (600, 0.99, 0.99)):
        a = 100.0 * torch.bernoulli(torch.full((n, 5), p_a), generator=g).mean(1)  # (n,) 5 queries per episode
        b = 100.0 * torch.bernoulli(torch.full((n, 5), p_b), generator=g).mean(1)
        cases.append((a.tolist(), b.tolist()))
    cases.append(([90.0, 80.0, 100.0], [90.0, 80.0, 100.0]))  # identical methods: difference 0 +- 0
    return cases


@exercise("paired_ci95", "mean and 95% CI half-width of a - b over the same episodes (percent points)",
          _paired_cases)
def paired_ci95_reference(acc_a: list[float], acc_b: list[float]) -> tuple[float, float]:
    """``(mean, 1.96 * std(ddof=1) / sqrt(n))`` of the per-episode differences ``acc_a - acc_b``."""
    diff = torch.tensor(acc_a, dtype=torch.float64) - torch.tensor(acc_b, dtype=torch.float64)
    return mean_ci95(diff)


def _mean_cases():
    g = torch.Generator().manual_seed(910)
    return [(torch.rand(n, generator=g).mul(100).tolist(),) for n in (2, 10, 200)] + [([100.0, 100.0, 100.0],)]


@exercise("mean_ci95", "mean accuracy and its 95% CI half-width from per-episode accuracies", _mean_cases)
def mean_ci95_reference(accuracies: list[float]) -> tuple[float, float]:
    """``(mean, 1.96 * std(ddof=1) / sqrt(n))`` of per-episode accuracies (percent)."""
    return mean_ci95(accuracies)
