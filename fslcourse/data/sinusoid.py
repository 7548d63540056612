"""The sinusoid regression task family of the MAML paper.

Taught in ``notebooks/05_maml.ipynb``.

Each task is ``y = A sin(x - φ)`` with amplitude ``A ~ U[0.1, 5]`` and phase
``φ ~ U[0, π]``; inputs are drawn from ``U[-5, 5]`` (Finn et al. 2017,
arXiv:1703.03400, Section 5.1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .episodes import _positive


@dataclass
class RegressionEpisode:
    """A batch of regression tasks.

    Attributes:
        support_x: ``(n_tasks, n_shot, 1)`` inputs.
        support_y: ``(n_tasks, n_shot, 1)`` targets.
        query_x: ``(n_tasks, n_query, 1)`` inputs.
        query_y: ``(n_tasks, n_query, 1)`` targets.
        amplitude: ``(n_tasks,)``.
        phase: ``(n_tasks,)``.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    amplitude: torch.Tensor
    phase: torch.Tensor

    def __len__(self) -> int:
        return self.amplitude.shape[0]

    def to(self, device) -> RegressionEpisode:
        return RegressionEpisode(*(getattr(self, k).to(device) for k in
                                   ("support_x", "support_y", "query_x", "query_y", "amplitude", "phase")))


class SinusoidTasks:
    """Seeded sampler of sinusoid regression tasks.

    Args:
        amplitude: ``(low, high)`` range of ``A``.
        phase: ``(low, high)`` range of ``φ``.
        x_range: ``(low, high)`` range of the inputs.
        seed: seeds the sampler's CPU generator.
    """

    def __init__(self, amplitude=(0.1, 5.0), phase=(0.0, math.pi), x_range=(-5.0, 5.0), seed: int = 0):
        for name, (lo, hi) in (("amplitude", amplitude), ("phase", phase), ("x_range", x_range)):
            if not lo <= hi:
                raise ValueError(f"{name}=({lo}, {hi}) must have low <= high")
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range
        self.generator = torch.Generator().manual_seed(seed)

    @staticmethod
    def function(x: torch.Tensor, amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """``A sin(x - φ)`` with ``amplitude``/``phase`` broadcast over ``x`` of shape ``(n_tasks, n, 1)``."""
        return amplitude.view(-1, 1, 1) * torch.sin(x - phase.view(-1, 1, 1))  # (n_tasks,) -> (n_tasks, 1, 1), broadcast over x

    def _uniform(self, lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=self.generator)

    def sample(self, n_tasks: int, n_shot: int, n_query: int) -> RegressionEpisode:
        """Draw ``n_tasks`` tasks with ``n_shot`` support and ``n_query`` query points each."""
        n_tasks, n_shot, n_query = (_positive(k, v) for k, v in (("n_tasks", n_tasks), ("n_shot", n_shot),
                                                                   ("n_query", n_query)))
        amp = self._uniform(*self.amplitude, n_tasks)
        phase = self._uniform(*self.phase, n_tasks)
        sx = self._uniform(*self.x_range, n_tasks, n_shot, 1)
        qx = self._uniform(*self.x_range, n_tasks, n_query, 1)
        return RegressionEpisode(sx, self.function(sx, amp, phase), qx, self.function(qx, amp, phase), amp, phase)
