"""Ready classifiers from committed checkpoints: ``fslcourse.pretrained(name)``.

A checkpoint is a dict saved with :func:`fslcourse.io.atomic_torch_save` and
loaded with ``weights_only=True``. It records how to rebuild the method
(``config``), its weights, the seed, the profile, the training time and the
accuracy measured when it was saved (``metrics``).
"""
from __future__ import annotations

from pathlib import Path

import torch

from .config import get_device, get_profile
from .io import atomic_torch_save, load_checkpoint
from .methods.base import FewShotClassifier, get_method
from .results import versions

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"


def checkpoint_path(name: str, profile: str = "quick") -> Path:
    """Where the committed checkpoint of method ``name`` for ``profile`` lives."""
    get_profile(profile)
    return CHECKPOINT_DIR / f"{name}-{profile}.pt"


def save_method(model: FewShotClassifier, path: str | Path, *, seed: int, profile: str,
                train_seconds: float, metrics: dict | None = None, extra: dict | None = None) -> Path:
    """Save ``model`` with everything needed to rebuild and audit it (atomic write)."""
    state = {
        "method": model.name,
        "config": model.config(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "seed": seed,
        "profile": profile,
        "train_seconds": float(train_seconds),
        "metrics": metrics or {},
        "versions": versions(),
    }
    if extra:
        state["extra"] = extra
    return atomic_torch_save(state, path)


def load_method(path: str | Path, device=None) -> tuple[FewShotClassifier, dict]:
    """Rebuild a method from a checkpoint file; returns ``(model, checkpoint)``."""
    ckpt = load_checkpoint(path)
    cls = get_method(ckpt["method"])
    model = cls(**ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(get_device(device)).eval(), ckpt


def pretrained(name: str, profile: str = "quick", device=None) -> FewShotClassifier:
    """A ready classifier for method ``name``, built from its committed checkpoint.

    Methods without weights (``pixel``) need no checkpoint.

    Raises:
        ValueError: ``name`` is not a registered method.
        FileNotFoundError: no checkpoint for that profile, with the command that trains one.
    """
    cls = get_method(name)
    dev = get_device(device)
    if not cls.trainable:
        return cls().to(dev).eval()
    path = checkpoint_path(name, profile)
    if not path.exists():
        raise FileNotFoundError(
            f"no {profile!r} checkpoint for {name!r} at {path}; "
            f"create it with `python -m fslcourse train {name} --profile {profile}`"
        )
    model, _ = load_method(path, dev)
    return model


def checkpoint_info(name: str, profile: str = "quick") -> dict:
    """The checkpoint's record without the weights (config, seed, metrics, times)."""
    ckpt = load_checkpoint(checkpoint_path(name, profile), map_location=torch.device("cpu"))
    ckpt.pop("state_dict", None)
    return ckpt
