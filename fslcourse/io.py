"""Atomic writes and safe checkpoint loading.

Every file the course writes goes to a temporary file in the same directory and
is then renamed into place, so an interrupted run never leaves a half-written
file behind. Checkpoints are loaded with ``weights_only=True``.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch


def _atomic(path: str | Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def atomic_torch_save(obj, path: str | Path) -> Path:
    """``torch.save`` to ``path`` through a temporary file and a rename."""
    return _atomic(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_json(obj, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON to ``path`` through a temporary file and a rename."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True)
            fh.write("\n")
    return _atomic(path, write)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint saved by :func:`atomic_torch_save` with ``weights_only=True``.

    Raises:
        FileNotFoundError: with the command that would create it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `python -m fslcourse train NAME`")
    return torch.load(path, map_location=map_location, weights_only=True)
