"""Portable numerics: the same weights bit for bit on any x86-64 CPU, not only on the machine that trained them.

Taught in ``docs/DEVELOPING.md`` (reproducing a checkpoint on another machine).

A recipe's budget is a step count, so every machine runs the same steps, but a CPU's kernels round differently
according to the code path they take: ATen's vectorised kernels (AVX2 on one processor, AVX-512 on another), the
code path MKL picks for the processor, oneDNN's convolutions (blocked by vector width and cache size), and how
work is split between threads. ``"native"`` numerics (the default) lets torch choose, fastest on each machine;
``"portable"`` pins all four: ATen's baseline kernels (``ATEN_CPU_CAPABILITY=default``), MKL's conditional
numerical reproducibility (``MKL_CBWR=COMPATIBLE``), convolutions without oneDNN, and one thread. It is slower:
1.9 to 3.8 times the training CPU-seconds per step of the quick recipes on one thread (medians of three rounds,
from first-order MAML's 1.88 to the Relation Network's 3.78: ``results/numerics_cost.json``,
``benchmarks/numerics_cost.py``). It concerns the CPU only (a GPU's kernels are another matter), and x86-64 only
(an Arm CPU has other libraries).

Choose it before torch computes anything: ``FSLCOURSE_NUMERICS=portable`` in the environment (``setup()`` and
``python -m fslcourse train`` read it), ``--numerics portable`` on the command line, or
``use_numerics("portable")`` first thing in a fresh Python.
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

import torch

NUMERICS = ("native", "portable")
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
MKL_CBWR_COMPATIBLE = 3  # mkl_service.h: the branch MKL_CBWR=COMPATIBLE selects


def _mkl_branch() -> int | None:
    """MKL's reproducibility branch as MKL reports it, or ``None`` where torch has no MKL to ask."""
    try:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        return int(lib.mkl_serv_cbwr_get(1))  # 1: MKL_CBWR_BRANCH
    except (OSError, AttributeError):
        return None


def current_numerics() -> str:
    """``"portable"`` when every pin of :func:`use_numerics` holds in this process, else ``"native"``."""
    pinned = (torch.backends.cpu.get_cpu_capability() == "DEFAULT" and not torch.backends.mkldnn.enabled
              and torch.get_num_threads() == 1 and _mkl_branch() in (None, MKL_CBWR_COMPATIBLE))
    return "portable" if pinned else "native"


def requested_numerics(numerics: str | None = None) -> str:
    """``numerics``, else ``FSLCOURSE_NUMERICS``, else ``"native"``, checked against :data:`NUMERICS`."""
    numerics = numerics or os.environ.get("FSLCOURSE_NUMERICS") or "native"
    if numerics not in NUMERICS:
        raise ValueError(f"numerics={numerics!r} is not known; use one of {', '.join(NUMERICS)} "
                         "(FSLCOURSE_NUMERICS or --numerics)")
    return numerics


def use_numerics(numerics: str | None = None) -> str:
    """Choose this process's numerics: ``"native"`` (torch's fastest) or ``"portable"`` (see the module).

    Args:
        numerics: ``"native"`` or ``"portable"``; default ``FSLCOURSE_NUMERICS``, else ``"native"``.

    Returns:
        The numerics now in force.

    Raises:
        ValueError: an unknown name, or ``"portable"`` asked for after torch has already computed with its
            native kernels (they cannot be switched in a running process).
    """
    numerics = requested_numerics(numerics)
    if numerics == "native":
        return current_numerics()
    before = {k: os.environ.get(k) for k in PORTABLE_ENV}
    os.environ.update(PORTABLE_ENV)  # read by ATen and MKL when they first compute
    capability, branch = torch.backends.cpu.get_cpu_capability(), _mkl_branch()
    late = ([f"ATen already runs its {capability} kernels"] if capability != "DEFAULT" else []) + (
        ["MKL already chose its code path"] if branch not in (None, MKL_CBWR_COMPATIBLE) else [])
    if late:  # leave the process as it was
        for k, v in before.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v
        raise ValueError(f"portable numerics must be chosen before torch computes anything, or before an earlier "
                         f"setup() or numerics check fixed its kernels ({'; '.join(late)}); start a fresh Python "
                         "with FSLCOURSE_NUMERICS=portable in its environment")
    torch.backends.mkldnn.enabled = False
    torch.set_num_threads(1)
    return "portable"
