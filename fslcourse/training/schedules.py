"""Learning-rate schedules, all functions of the step count (never of the wall clock).

Taught in ``notebooks/02_protonet.ipynb``.

``constant``; ``cosine``: from ``lr`` down to ``floor * lr`` over the run, computed by
torch's :class:`~torch.optim.lr_scheduler.CosineAnnealingLR` (its recursive form);
``cosine-closed``: the same curve from its closed form
:math:`\\eta_t = \\eta(f + (1 - f)\\tfrac12(1 + \\cos(\\pi t / T)))` (two forms kept because
committed checkpoints were trained with each and a schedule must reproduce them bit for
bit); ``linear``: from ``lr`` straight down to 0 at the last step (Reptile's meta step size);
``step``: multiply by ``gamma`` every ``every`` steps (the ProtoNet paper);
``warmup-cosine``: a linear warm-up over ``warmup`` steps times a cosine to 0 (the
diffusion model). Every scheduler is resumable through its ``state_dict``.
"""
from __future__ import annotations

import math

import torch

from ..recipe import Recipe


def closed_cosine(step: int, steps: int, floor: float = 0.0) -> float:
    """Factor of the initial rate after ``step`` of ``steps`` steps: ``floor + (1 - floor) (1 + cos(π t/T)) / 2``."""
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))


def warmup_cosine(step: int, steps: int, warmup: int = 100) -> float:
    """``min(1, (t + 1) / warmup) * (1 + cos(π t / T)) / 2``, the cosine evaluated in float32 as trained."""
    return min(1.0, (step + 1) / warmup) * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * step / steps)).item())


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe):
    """The recipe's scheduler for ``optimizer`` (``None`` for ``constant``); step it once per training step."""
    kw, steps = dict(recipe.schedule_kwargs), recipe.steps
    name = recipe.schedule
    if name == "constant":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=kw.get("floor", 0.0) * recipe.lr)
    if name == "cosine-closed":
        floor = kw.get("floor", 0.0)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: closed_cosine(t, steps, floor))
    if name == "linear":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0 - min(t, steps) / steps)
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, kw["every"], gamma=kw.get("gamma", 0.5))
    if name == "warmup-cosine":
        warmup = kw.get("warmup", 100)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: warmup_cosine(t, steps, warmup))
    raise ValueError(f"schedule={name!r} is not known")  # Recipe already refuses unknown names
