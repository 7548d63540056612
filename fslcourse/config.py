"""One set-up call for every notebook: seed, device and profile.

Taught in ``notebooks/01_episodes.ipynb`` (first cells of every notebook).

The ``quick`` profile is sized for a 2-core CPU (each notebook runs in minutes);
the ``full`` profile follows the papers' schedules and is meant for a GPU.
``FSLCOURSE_DEVICE`` forces the device (``make test`` sets it to ``cpu`` so that
stored notebook outputs match on every machine).
"""
from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

PROFILE_NAMES = ("quick", "full")


@dataclass(frozen=True)
class Profile:
    """Sizes that differ between the quick (CPU) and full (GPU) runs.

    Attributes:
        name: ``"quick"`` or ``"full"``.
        eval_episodes: test episodes behind every reported accuracy.
        n_query: query examples per class in test episodes.
        train_seconds: wall-time budget for one method's training run.
    """

    name: str
    eval_episodes: int
    n_query: int
    train_seconds: float
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "quick": Profile(name="quick", eval_episodes=200, n_query=5, train_seconds=180.0),
    "full": Profile(name="full", eval_episodes=1000, n_query=15, train_seconds=float("inf")),
}


@dataclass(frozen=True)
class Course:
    """What :func:`setup` returns: the seed, device and profile of this run."""

    seed: int
    device: torch.device
    profile: Profile

    def __str__(self) -> str:
        return f"fslcourse: seed={self.seed}, device={self.device.type}, profile={self.profile.name}"


def get_profile(name: str) -> Profile:
    """Return the :class:`Profile` called ``name`` (``quick`` or ``full``)."""
    if name not in PROFILES:
        raise ValueError(f"profile={name!r} is not known; use one of {', '.join(PROFILE_NAMES)}")
    return PROFILES[name]


def get_device(device: str | torch.device | None = None) -> torch.device:
    """Pick the compute device: the argument, else ``FSLCOURSE_DEVICE``, else CUDA if present, else CPU.

    Raises:
        ValueError: when CUDA is asked for but is not available.
    """
    choice = device if device is not None else os.environ.get("FSLCOURSE_DEVICE")
    if choice is None or str(choice) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(choice)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={str(choice)!r} was requested but CUDA is not available; "
            "unset FSLCOURSE_DEVICE or set it to 'cpu'"
        )
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and CUDA)."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def setup(seed: int = 0, profile: str = "quick", device: str | None = None, quiet: bool = False) -> Course:
    """Seed everything, choose the device and the profile; call it in every notebook's first cells.

    Args:
        seed: seeds ``random``, NumPy and torch.
        profile: ``"quick"`` (2-core CPU, minutes) or ``"full"`` (paper-sized, GPU).
        device: force a device; default ``FSLCOURSE_DEVICE`` or CUDA when available, else CPU.
        quiet: do not print the one-line summary.

    Returns:
        A :class:`Course` with ``seed``, ``device`` and ``profile``.
    """
    course = Course(seed=seed, device=get_device(device), profile=get_profile(profile))
    seed_everything(seed)
    if not quiet:
        print(course)
    return course
