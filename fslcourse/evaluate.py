"""Accuracy with a 95% confidence interval over fixed, seeded test episodes.

Taught in ``notebooks/01_episodes.ipynb``; every method notebook reports with it.

The interval is the normal approximation used by the papers the course
compares against: ``1.96 * s / sqrt(n)`` with ``s`` the sample standard
deviation (``ddof=1``) of the per-episode accuracies and ``n`` the number of
episodes. The same seed draws the same episodes on any machine.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .data.episodes import EpisodeSampler
from .data.splits import ImageSplit
from .methods.base import FewShotClassifier

Z95 = 1.959963984540054


def mean_ci95(values) -> tuple[float, float]:
    """Mean and 95% half-width ``1.96 * std(ddof=1) / sqrt(n)`` of a 1-D sequence (n >= 2)."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    if v.numel() < 2:
        raise ValueError(f"a confidence interval needs at least 2 values, got {v.numel()}")
    return float(v.mean()), float(Z95 * v.std(unbiased=True) / math.sqrt(v.numel()))


@dataclass
class EvalResult:
    """Mean accuracy (percent) with its 95% CI half-width over ``n_episodes``."""

    accuracy: float
    ci95: float
    n_episodes: int
    n_way: int
    n_shot: int
    n_query: int
    seed: int
    within_alphabet: bool
    seconds: float
    episode_accuracies: list[float] = field(repr=False, default_factory=list)

    def __str__(self) -> str:
        proto = f"{self.n_way}-way {self.n_shot}-shot" + (" (within alphabet)" if self.within_alphabet else "")
        return f"{proto}: {self.accuracy:.1f}% ± {self.ci95:.1f}% ({self.n_episodes} episodes)"

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d.pop("episode_accuracies")
        return d


def evaluate(method: FewShotClassifier, split: ImageSplit, n_way: int = 5, n_shot: int = 1,
             n_query: int = 15, n_episodes: int = 1000, seed: int = 0, within_alphabet: bool = False,
             device=None, progress: bool = False) -> EvalResult:
    """Evaluate a method on fixed, seeded episodes of ``split``.

    Args:
        method: any :class:`FewShotClassifier` (or a callable with the same signature).
        split: the split to draw test episodes from (meta-test for reported numbers).
        n_way, n_shot, n_query: the protocol.
        n_episodes: how many episodes (at least 2).
        seed: seeds the episode sampler; the same seed gives the same episodes.
        within_alphabet: draw every episode's classes from one alphabet.
        device: where to run; default the split's device.
        progress: show a tqdm progress bar.

    Returns:
        An :class:`EvalResult` with accuracy and ci95 in percent.
    """
    sampler = EpisodeSampler(split, n_way, n_shot, n_query, seed=seed, within_alphabet=within_alphabet)
    if n_episodes < 2:
        raise ValueError(f"n_episodes={n_episodes} but a confidence interval needs at least 2 episodes")
    was_training = getattr(method, "training", False)
    if hasattr(method, "eval"):
        method.eval()
    grad = getattr(method, "needs_grad_at_test", False)
    accs = []
    start = time.perf_counter()
    try:
        for _ in tqdm(range(n_episodes), desc=f"{n_way}-way {n_shot}-shot", disable=not progress):
            ep = sampler.sample()
            if device is not None:
                ep = ep.to(device)
            with torch.set_grad_enabled(grad):
                logits = method.predict(ep.support_x, ep.support_y, ep.query_x)
            accs.append((logits.argmax(dim=1) == ep.query_y).float().mean().item() * 100.0)
    finally:
        if was_training and hasattr(method, "train"):
            method.train()
    mean, ci = mean_ci95(accs)
    return EvalResult(mean, ci, n_episodes, n_way, n_shot, n_query, seed, within_alphabet,
                      time.perf_counter() - start, accs)
