"""Training recipes as plain data: what to train, for how many steps, on which episodes.

Taught in ``notebooks/02_protonet.ipynb``; every method and generator module keeps
``RECIPES = {"quick": Recipe(...), "full": Recipe(...), "paper": Recipe(...)}`` beside
its algorithm, and :mod:`fslcourse.training` is the one place that runs them.

A recipe is frozen: ``recipe.replace(steps=100)`` gives a changed copy, checked as
it is built. Budgets are step counts, so the same recipe and seed run the same steps
on any machine, and give the same weights bit for bit on the same machine (another
CPU's kernels may round differently; checkpoints record the CPU), or on any x86-64 CPU with
portable numerics (:mod:`fslcourse.numerics`);
``max_seconds`` (optional) may stop a run early, and the run records that it did,
but it never shapes the schedule.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine", "cosine-closed", "linear", "step", "warmup-cosine")
SCHEDULE_KWARGS = {"constant": (), "cosine": ("floor",), "cosine-closed": ("floor",), "linear": (),
                   "step": ("every", "gamma"), "warmup-cosine": ("warmup",)}  # what each schedule reads
TRAINERS = ("episodic", "pretrain", "meta-transfer", "regression", "vae", "gan", "hallucinator", "diffusion")


def _positive_int(name: str, value, allow_zero: bool = False) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"recipe {name}={value!r} must be a {'non-negative' if allow_zero else 'positive'} integer")


@dataclass(frozen=True)
class Recipe:
    """How to train one method or generator.

    Attributes:
        trainer: how batches are drawn (see :mod:`fslcourse.training.trainers`): ``"episodic"``,
            ``"pretrain"`` (classification over every meta-train class), ``"meta-transfer"`` (MTL) or
            ``"regression"`` (sinusoid tasks), or a generator's (``"vae"``, ``"gan"``, ``"hallucinator"``,
            ``"diffusion"``).
        steps: optimizer steps (meta-batches, mini-batches); the whole budget.
        lr: initial learning rate.
        model: constructor keyword arguments of the model.
        optimizer: ``"adam"`` or ``"sgd"``; ``optimizer_kwargs`` go to it (e.g. ``{"betas": (0.5, 0.9)}``).
        schedule: learning-rate schedule over ``steps`` (see :mod:`fslcourse.training.schedules`);
            ``schedule_kwargs`` set it (``floor``, ``every``, ``gamma``, ``warmup``).
        n_way, n_shot, n_query, meta_batch, within_alphabet: the training episodes (for a
            classification pre-training: ``n_way`` classes × ``n_shot`` images per mini-batch).
        val_every, val_episodes: validate every this many steps on this many fixed episodes
            (``val_every=0``: only once, when the run has finished, so the record has a validation score).
        val_n_way, val_n_shot, val_n_query, val_within_alphabet: the validation episodes.
        seed: seeds the initial weights and every training random stream.
        state_every: write the resumable training state every this many steps and at the last step (0: only
            when a run stops early).
        max_seconds: optional wall-clock cap on each sitting (a resumed run gets it again); stopping early is
            recorded, the schedule ignores it.
        options: algorithm-specific settings of the training step (``hard_tasks``, ``n_critic``, ...).
        note: where the recipe comes from and how it departs from the paper.
    """

    steps: int
    lr: float
    trainer: str = "episodic"
    model: dict = field(default_factory=dict)
    optimizer: str = "adam"
    optimizer_kwargs: dict = field(default_factory=dict)
    schedule: str = "constant"
    schedule_kwargs: dict = field(default_factory=dict)
    n_way: int = 5
    n_shot: int = 1
    n_query: int = 15
    meta_batch: int = 1
    within_alphabet: bool = False
    val_every: int = 100
    val_episodes: int = 100
    val_n_way: int = 5
    val_n_shot: int = 1
    val_n_query: int = 5
    val_within_alphabet: bool = False
    seed: int = 0
    state_every: int = 500
    max_seconds: float | None = None
    options: dict = field(default_factory=dict)
    note: str = ""

    def __post_init__(self):
        for name in ("steps", "n_way", "n_shot", "meta_batch", "val_n_way", "val_n_shot", "val_n_query"):
            _positive_int(name, getattr(self, name))
        for name in ("n_query", "val_every", "val_episodes", "seed", "state_every"):
            _positive_int(name, getattr(self, name), allow_zero=True)
        if not (isinstance(self.lr, (int, float)) and 0 <= self.lr < float("inf")):
            raise ValueError(f"recipe lr={self.lr!r} must be a finite non-negative number")
        for name in ("within_alphabet", "val_within_alphabet"):
            if not isinstance(getattr(self, name, False), bool):
                raise ValueError(f"recipe {name}={getattr(self, name)!r} must be True or False")
        for name in ("model", "options", "schedule_kwargs", "optimizer_kwargs"):
            if not isinstance(getattr(self, name, {}), dict):
                raise ValueError(f"recipe {name}={getattr(self, name)!r} must be a dict")
        for name, known in (("trainer", TRAINERS), ("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
            if getattr(self, name) not in known:
                raise ValueError(f"recipe {name}={getattr(self, name)!r} is not known; use one of {', '.join(known)}")
        self._check_schedule_kwargs()
        if self.val_every and self.val_episodes < 1:
            raise ValueError(f"recipe val_episodes={self.val_episodes} but validation needs episodes; "
                             "raise it or set val_every=0")
        if self.max_seconds is not None and not (isinstance(self.max_seconds, (int, float)) and self.max_seconds > 0):
            raise ValueError(f"recipe max_seconds={self.max_seconds!r} must be a positive number of seconds or None")

    def _check_schedule_kwargs(self) -> None:
        """Each schedule's settings: only the ones it reads, in their range (a typo would be silently ignored)."""
        kw, allowed = self.schedule_kwargs, SCHEDULE_KWARGS[self.schedule]
        unknown = sorted(set(kw) - set(allowed))
        if unknown:
            raise ValueError(f"recipe schedule_kwargs {', '.join(map(repr, unknown))} mean nothing to schedule="
                             f"{self.schedule!r}; it reads {', '.join(map(repr, allowed)) or 'no settings'}")
        if self.schedule == "step" and not (isinstance(kw.get("every"), int) and kw["every"] >= 1):
            raise ValueError(f"recipe schedule='step' needs schedule_kwargs every= a whole number of steps >= 1, "
                             f"got {kw.get('every')!r}")
        checks = {"floor": lambda v: 0 <= v <= 1, "gamma": lambda v: 0 < v < float("inf"),
                  "warmup": lambda v: isinstance(v, int) and v >= 1}
        for key, ok in checks.items():
            if key in kw and not (isinstance(kw[key], (int, float)) and ok(kw[key])):
                raise ValueError(f"recipe schedule_kwargs {key}={kw[key]!r} is out of range: floor in [0, 1], "
                                 "gamma > 0, warmup a whole number >= 1")

    def replace(self, **changes: Any) -> Recipe:
        """A copy with ``changes`` (checked); ``model``/``options`` given as dicts are merged into the old ones; a new
        ``schedule`` without ``schedule_kwargs`` keeps only the old settings it reads.

        Raises:
            ValueError: a name that is not a recipe field, with the list of fields.
        """
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"{', '.join(unknown)} is not a recipe field; use one of {', '.join(sorted(known))}")
        for key in ("model", "options"):
            if key in changes:
                changes[key] = {**getattr(self, key), **changes[key]}
        if "schedule" in changes and "schedule_kwargs" not in changes:  # the old settings the new one reads
            changes["schedule_kwargs"] = {k: v for k, v in self.schedule_kwargs.items()
                                          if k in SCHEDULE_KWARGS.get(changes["schedule"], ())}
        return dataclasses.replace(self, **changes)

    def summary(self) -> str:
        """One line for people: the trainer, the budget, the optimizer and the batches."""
        batch = (f"{self.n_way} classes x {self.n_shot} images per batch" if self.trainer == "pretrain" else
                 f"{self.meta_batch} x {self.n_way}-way {self.n_shot}-shot {self.n_query}-query episodes per step"
                 + (" (one alphabet each)" if self.within_alphabet else ""))
        extra = f", {self.options}" if self.options else ""
        return (f"{self.trainer}: {self.steps} steps, {self.optimizer} lr {self.lr:g} ({self.schedule}), {batch}, "
                f"model {self.model}{extra}")

    def as_dict(self) -> dict:
        """Plain Python values (saved in checkpoints and loadable with ``weights_only=True``)."""
        return dataclasses.asdict(self)

    def differs_from(self, saved: dict) -> list[str]:
        """The fields in which a recipe saved with :meth:`as_dict` trains otherwise than this one (``note``,
        where the recipe comes from, is documentation and never counts)."""
        mine = self.as_dict()
        return sorted(k for k in mine.keys() | saved.keys() if k != "note" and mine.get(k) != saved.get(k))

    @classmethod
    def from_dict(cls, d: dict) -> Recipe:
        """The recipe :meth:`as_dict` wrote (unknown keys are an error)."""
        return cls(**d)
