"""One set-up call for every notebook: seed, device and profile.

Taught in ``notebooks/01_episodes.ipynb`` (first cells of every notebook).

The ``quick`` profile is sized for a 2-core CPU (each notebook runs in minutes);
the ``full`` profile follows the papers' schedules and is meant for a GPU.
``FSLCOURSE_DEVICE`` forces the device (``make test`` sets it to ``cpu`` so that
stored notebook outputs match on every machine).
"""
from __future__ import annotations

import operator
import os
import random
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .numerics import use_numerics

PROFILE_NAMES = ("quick", "full")
# Every recipe name a committed checkpoint may carry (NAME-RECIPE.pt): the profiles, the papers' recipes (paper-20way:
# the papers that train a separate model for 20-way episodes; paper-5way: Matching Networks' 5-way model) and the
# method-specific ones (ProtoNet's lake and its ablation, minimal, minimal-synthetic).
RECIPE_NAMES = (*PROFILE_NAMES, "paper", "paper-20way", "paper-5way", "lake", "lake-no-augment", "lake-random-episodes",
                "lake-32", "lake-seed1", "lake-3000", "lake-8000", "minimal", "minimal-synthetic")


@dataclass(frozen=True)
class Profile:
    """Sizes that differ between the quick (CPU) and full (GPU) runs.

    Attributes:
        name: ``"quick"`` or ``"full"``.
        eval_episodes: test episodes behind every reported accuracy.
        n_query: query examples per class in test episodes.

    Training budgets are not here: they are step counts in each method's recipes (:mod:`fslcourse.recipe`).
    """

    name: str
    eval_episodes: int
    n_query: int
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "quick": Profile(name="quick", eval_episodes=200, n_query=5),
    "full": Profile(name="full", eval_episodes=1000, n_query=15),
}


@dataclass(frozen=True)
class Course:
    """What :func:`setup` returns: the seed, device, profile and numerics (:mod:`fslcourse.numerics`) of this run."""

    seed: int
    device: torch.device
    profile: Profile
    numerics: str = "native"

    def __str__(self) -> str:
        portable = ", numerics=portable" if self.numerics == "portable" else ""
        return f"fslcourse: seed={self.seed}, device={self.device.type}, profile={self.profile.name}{portable}"


def get_profile(name: str) -> Profile:
    """Return the :class:`Profile` called ``name`` (``quick`` or ``full``)."""
    if not isinstance(name, str) or name not in PROFILES:  # a Profile object was an 'unhashable type' TypeError
        shown = f"a {type(name).__name__}" if not isinstance(name, str) else repr(name)
        raise ValueError(f"profile={shown} is not known; use one of {', '.join(PROFILE_NAMES)} (a name)")
    return PROFILES[name]


DEVICE_CHOICES = "cpu, cuda, cuda:N, mps, auto"
BACKEND_NAMES = {"mps": "MPS (Apple GPU)"}  # how an error names a backend (default: its type in capitals)


def _auto_device() -> torch.device:
    """The accelerator torch reports (e.g. an NVIDIA GPU), else the CPU."""
    return torch.accelerator.current_accelerator() if torch.accelerator.is_available() else torch.device("cpu")


def _backend(kind: str):
    """torch's module for an accelerator type (``torch.cuda``, ``torch.mps`` ...), or None if torch has none."""
    module = getattr(torch, kind, None)
    return module if hasattr(module, "is_available") and hasattr(module, "device_count") else None


def get_device(device: str | torch.device | None = None) -> torch.device:
    """Pick the compute device: the argument, else ``FSLCOURSE_DEVICE``, else the accelerator if present, else CPU.

    Accepted values: ``cpu``, an accelerator type torch knows (``cuda``, ``cuda:N``, ``mps`` ...) and
    ``auto`` (the accelerator if present, else the CPU), or a :class:`torch.device` of one of those types.

    Raises:
        ValueError: the value is not one of those, or names a device this machine does not have;
            the message names the value (and ``FSLCOURSE_DEVICE`` when it came from there) and the fix.
    """
    from_env = device is None
    choice = os.environ.get("FSLCOURSE_DEVICE") if from_env else device
    where = f"FSLCOURSE_DEVICE={str(choice)!r}" if from_env else f"device={str(choice)!r}"
    fix = "unset FSLCOURSE_DEVICE or set it to cpu" if from_env else "use 'cpu', or leave it unset for auto"
    text = "auto" if choice is None else str(choice).strip().lower()
    if text == "auto":
        return _auto_device()
    if not text:
        raise ValueError(f"{where} is empty; {fix} (valid values: {DEVICE_CHOICES})")
    try:
        dev = torch.device(text)
    except RuntimeError:
        raise ValueError(f"{where} is not a device; {fix} (valid values: {DEVICE_CHOICES})") from None
    backend = None if dev.type == "cpu" else _backend(dev.type)
    if (dev.type == "cpu" and dev.index is not None) or (dev.type != "cpu" and backend is None):
        raise ValueError(f"{where} is not a device; {fix} (valid values: {DEVICE_CHOICES})")
    if backend is not None:
        name = BACKEND_NAMES.get(dev.type, dev.type.upper())
        if not backend.is_available():
            raise ValueError(f"{where} was requested but {name} is not available; {fix}")
        count = backend.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"{where} but this machine has {count} {name} device(s) "
                             f"({dev.type}:0 to {dev.type}:{count - 1}); use one of those or {fix}")
    return dev


SEED_MAX = 2**64 - 1  # torch's seed range: the largest seed a torch.Generator takes


def whole_seed(seed, name: str = "seed") -> int:
    """``seed`` as a Python int (a NumPy integer too), or a one-line ValueError naming it (as ``name``: the argument
    or control that gave it) and the range."""
    try:
        value = None if isinstance(seed, bool) else operator.index(seed)
    except TypeError:
        value = None
    if value is None or not 0 <= value <= SEED_MAX:
        raise ValueError(f"{name}={seed!r} must be a whole number from 0 to 2**64 - 1 (torch's range); e.g. 0")
    return value


def shifted_seed(seed: int, k: int) -> int:
    """``seed + k``, wrapped round into torch's range (a control's next seed after ``SEED_MAX`` is 0)."""
    return (seed + k) % (SEED_MAX + 1)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and CUDA)."""
    seed = whole_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def setup(seed: int = 0, profile: str = "quick", device: str | None = None, quiet: bool = False,
          numerics: str | None = None) -> Course:
    """Seed everything, choose the device and the profile; call it in every notebook's first cells.

    Args:
        seed: seeds ``random``, NumPy and torch.
        profile: ``"quick"`` (2-core CPU, minutes) or ``"full"`` (paper-sized, GPU).
        device: force a device; default ``FSLCOURSE_DEVICE`` or CUDA when available, else CPU.
        quiet: do not print the one-line summary.
        numerics: ``"native"`` or ``"portable"`` (the same weights on any x86-64 CPU, see
            :mod:`fslcourse.numerics`); default ``FSLCOURSE_NUMERICS``, else native.

    Returns:
        A :class:`Course` with ``seed``, ``device``, ``profile`` and ``numerics``.
    """
    numerics = use_numerics(numerics)  # first: portable numerics must be chosen before torch computes
    seed = whole_seed(seed)
    course = Course(seed=seed, device=get_device(device), profile=get_profile(profile), numerics=numerics)
    seed_everything(seed)
    if not quiet:
        print(course)
    return course
