"""Atomic writes and safe checkpoint loading.

Every file the course writes goes to a temporary file in the same directory and
is then renamed into place, so an interrupted run never leaves a half-written
file behind. Checkpoints are loaded with ``weights_only=True``.
"""
from __future__ import annotations

import errno
import json
import os
import pickle
import re
import stat
import tempfile
import zipfile
from pathlib import Path

import torch


def _umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it, then put it back at once
    os.umask(mask)
    return mask


def _nearest_existing(folder: Path) -> Path:
    """``folder`` or its nearest ancestor that exists."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _fsync(path: str | Path) -> None:
    """Flush a file's (or a folder's) data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic(path: str | Path, write) -> Path:
    """Write ``path`` through ``write(tmp)`` on a temporary file in the same folder and a rename.

    The file gets the mode an ordinary ``open`` would give it: the existing file's mode when it is
    replaced, else ``0o666`` minus the umask (``mkstemp`` alone would make it ``0o600``).

    Raises:
        OSError: (the same subclass) naming ``path``, never the temporary file.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give a file path inside it")
    folder = _nearest_existing(path.parent)
    if not folder.is_dir():
        raise NotADirectoryError(f"could not write {path}: {folder} is a file, not a folder; choose another path")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o666 & ~_umask()
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        write(tmp)
        _fsync(tmp)  # the bytes on disk before the rename: a crash leaves the old file or the whole new one
        os.replace(tmp, path)
        if os.name == "posix":
            _fsync(path.parent)  # and the rename itself
    except OSError as err:
        reason = err.strerror or str(err)
        if tmp is not None:
            reason = reason.replace(tmp, "its temporary file")
        raise type(err)(f"could not write {path} ({reason}); check that its folder exists and is writable") \
            from err
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def check_writable(path: str | Path, what: str = "the output file") -> Path:
    """Check, before any long work, that ``path`` could be written: not a folder, and its folder exists
    (or can be created) and takes a new file (tried with a temporary file, removed at once). Creates nothing
    that stays.

    Raises:
        ValueError: naming ``path`` and the fix.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; give a file path, e.g. {path / 'result.json'}")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{what} {path} exists and is not writable; choose another path or change its permissions")
    folder = _nearest_existing(path.parent)
    if not folder.is_dir():
        raise ValueError(f"{what} {path} cannot be created: {folder} is a file, not a folder; choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path} cannot be written: {folder} is not writable; choose another path")
    try:  # permission bits do not tell everything (root, /proc, a read-only mount): try a file there
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".fslcourse-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"{what} {path} cannot be written: {folder} refuses new files ({err.strerror}); "
                         "choose another path") from None
    return path


def check_target(out: Path, overwrite: bool) -> None:
    """Refuse, before any work, a checkpoint path that exists (without ``overwrite``) or cannot be written."""
    if out.is_dir():
        raise ValueError(f"the checkpoint {out} is a folder; give a file path, e.g. {out / 'model.pt'}")
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists; pass overwrite=True (--overwrite) to replace it, or choose another --out")
    check_writable(out, "the checkpoint")


def check_record_target(out: str | Path, overwrite: bool, flag: str = "--out", elsewhere: str | None = None) -> None:
    """Refuse, before any work, a record file that exists (a committed one by default) unless ``overwrite``, a
    folder, or a place that cannot be written: a benchmark replaces a committed record only when asked."""
    out = Path(out)
    if out.exists() and not out.is_dir() and not overwrite:
        raise ValueError(f"{flag} {out} exists; pass --overwrite to replace it, or "
                         f"{elsewhere or f'give {flag} another path'}")
    check_writable(out, flag)


def state_path_for(out: Path) -> Path:
    """Where the resumable training state of a run that writes checkpoint ``out`` lives: beside it."""
    return out.with_name(out.name.removesuffix(".pt") + ".state.pt")


STATE_KEYS = frozenset({"recipe", "step", "model", "optimizer", "streams"})  # what every training state holds


def check_state_path(state: Path, out: Path | None) -> None:
    """Refuse, before any work, a training-state path that a run would wrongly write or delete: the checkpoint
    itself (the finished run deletes its state), a folder, an unwritable place, or an existing file that is not
    a training state (``--overwrite`` replaces a state and a finished run deletes it, so anything else there
    would be lost).

    Raises:
        ValueError: naming ``state`` and the fix.
    """
    if out is not None and state.resolve() == Path(out).resolve():
        raise ValueError(f"--state {state} is the checkpoint itself; leave --state out (default: "
                         f"{state_path_for(Path(out)).name} beside it) or choose another file")
    check_writable(state, "the training state (--state)")
    if state.exists():
        try:
            held = load_checkpoint(state)
        except ValueError:
            held = None
        if not isinstance(held, dict) or not STATE_KEYS <= held.keys():
            raise ValueError(f"--state {state} exists and is not a training state written by `train`; give another "
                             "path (nothing was changed)")


def save_traceback(err: BaseException) -> Path | None:
    """Write ``err``'s full traceback to a new file in the temporary folder; ``None`` if that fails."""
    import traceback

    try:
        fd, name = tempfile.mkstemp(prefix="fslcourse-error-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("".join(traceback.format_exception(type(err), err, err.__traceback__)))
        return Path(name)
    except OSError:
        return None


def atomic_torch_save(obj, path: str | Path) -> Path:
    """``torch.save`` to ``path`` through a temporary file and a rename."""
    return _atomic(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_bytes(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    return _atomic(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_json(obj, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON to ``path`` through a temporary file and a rename."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True)
            fh.write("\n")
    return _atomic(path, write)


def file_source(path: str | Path) -> dict:
    """``{"file": name, "sha256": hex digest}`` of a file: which exact checkpoint a result came from."""
    import hashlib

    path = Path(path)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return {"file": path.name, "sha256": h.hexdigest()}


def _failed_checksum(path: Path) -> str | None:
    """The name of the first part of a torch (zip) file whose bytes do not match the CRC-32 stored with them, or
    ``None`` (also for a file that is not a readable zip: ``torch.load`` then says what is wrong)."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError, NotImplementedError):
        return None
    return None if bad is None else bad.split("/", 1)[-1]


# The type each field of a checkpoint must have, wherever it stands (a generator file nests its models' fields under
# "pixel" and "feature"); a field an older version did not write may be absent.
FIELD_TYPES = {"method": str, "family": str, "config": dict, "critic_config": dict, "state_dict": dict, "seed": int,
               "steps": int, "T": int, "profile": str, "schedule": str, "recipe_name": str, "recipe": dict,
               "metrics": dict, "log": dict, "history": dict, "versions": dict, "cpu_seconds": (int, float),
               "train_seconds": (int, float)}
RETRAIN = ("restore it (git checkout -- FILE) or retrain it with `python -m fslcourse train NAME --recipe RECIPE "
           "--overwrite` (a checkpoint is NAME-RECIPE.pt)")


def check_field_types(ckpt, path, where: str = "", models: bool = False) -> None:
    """Refuse, in one line, a checkpoint whose fields were edited to another type (a list for a config, text for a
    number, a weight that is not a tensor), at its top level and in the models a generator file nests under
    ``pixel`` and ``feature``: the code reading it would otherwise fail deep inside with a raw error, or load it and
    mislead.

    Raises:
        ValueError: naming the file, the field and the fix.
    """
    if not isinstance(ckpt, dict):
        return
    for key, value in ckpt.items():
        name = f"{where}{key}"
        want = FIELD_TYPES.get(key)
        if want is not None and value is not None and (not isinstance(value, want) or isinstance(value, bool)):
            names = " or ".join(t.__name__ for t in (want if isinstance(want, tuple) else (want,)))
            raise ValueError(f"{path}: its field {name!r} is {type(value).__name__} {value!r:.60}, not {names}; {RETRAIN}")
        if key == "state_dict":
            bad = next((k for k, v in value.items() if not isinstance(v, torch.Tensor)), None)
            if bad is not None:
                raise ValueError(f"{path}: its weight {bad!r} is {type(value[bad]).__name__}, not a tensor; {RETRAIN}")
        elif key in ("pixel", "feature") or models and isinstance(value, dict) and key not in FIELD_TYPES:
            check_field_types(value, path, f"{name}/", models=True)  # a generator's models, by name or fingerprint


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint saved by :func:`atomic_torch_save` with ``weights_only=True``.

    Raises:
        FileNotFoundError: with the command that would create it.
        ValueError: the file is truncated, corrupt (a part fails the CRC-32 stored in the file), holds objects
            other than tensors and plain data (``weights_only`` refuses them) or a field of another type than the course
            writes (:func:`check_field_types`); the message names the file and the fix.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `python -m fslcourse train NAME --recipe "
                                f"RECIPE` (a checkpoint is NAME-RECIPE.pt)")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the checkpoint file inside it (NAME-RECIPE.pt)")
    try:
        damaged = _failed_checksum(path)
        if damaged is not None:  # torch reads a zip's parts without checking their CRC-32: a flipped bit loads
            raise ValueError(f"{path} is not a loadable checkpoint (its part {damaged} fails its checksum: the file "
                             f"changed after it was written); {RETRAIN}")
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, KeyError, AttributeError,
            UnicodeDecodeError, AssertionError, OSError) as err:
        if isinstance(err, OSError) and err.errno != errno.EINVAL:
            raise  # unreadable (permissions, a disk error): the OS's message names the file
        # torch's own text is not repeated: it may advise weights_only=False, which the course never does
        if isinstance(err, pickle.UnpicklingError):
            why = "it holds objects other than tensors and plain data, which weights_only=True refuses"
        elif isinstance(err, (EOFError, zipfile.BadZipFile, OSError)) or "zip archive" in str(err) \
                or "central directory" in str(err):  # OSError EINVAL: a file cut past its first 4 KB
            why = "it is not a complete torch file: empty or cut short"
        else:
            why = f"{type(err).__name__}: " + re.sub(r"\x1b\[[0-9;]*m", "", (str(err).strip().splitlines() or [""])[0])[:120]
        raise ValueError(f"{path} is not a loadable checkpoint ({why}); it is truncated, "
                         f"corrupt or holds more than tensors and plain data: {RETRAIN}") from None
    check_field_types(ckpt, path)  # every reader gets fields of the types it expects, or one line
    return ckpt
