"""``python -m fslcourse doctor``: is this machine ready for the course?

Lists the versions of Python and the packages the notebooks need, the device and
profile the notebooks will use, and where Omniglot was found. Every missing piece
gets a one-line fix. Exit status 0 when everything essential is there, 1 otherwise.

Run it first when a notebook fails to start (the README's "Set-up" section).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

SETUP_FIX = "run `make setup` in the course folder (it installs everything into .venv)"
DEVICE_FIX = ("unset FSLCOURSE_DEVICE (auto: CUDA if present, else CPU) or set it to one of cpu, cuda, cuda:N, "
              "mps, auto that this machine has (cpu always works)")
DATA_FIX = (
    "set FSLCOURSE_DATA to a folder holding omniglot/images_background and "
    "omniglot/images_evaluation, or run `python -m fslcourse download`"
)


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report.

    Attributes:
        name: what was checked (``"torch"``, ``"device"``, ``"omniglot"``, ...).
        ok: whether it is present and usable.
        detail: the version, device or path found, or what went wrong.
        fix: one line telling how to fix it (empty when ``ok``).
        essential: whether the notebooks need it (a missing optional piece only warns).
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""
    essential: bool = True

    @property
    def status(self) -> str:
        """``"ok"``, ``"FAIL"`` (essential and missing) or ``"warn"`` (optional and missing)."""
        if self.ok:
            return "ok"
        return "FAIL" if self.essential else "warn"


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    ok = sys.version_info >= (3, 11)
    return Check("python", ok, f"{version} ({sys.executable})",
                 "" if ok else "use Python 3.11: `make setup` creates .venv with python3.11")


def check_package(name: str, fix: str = SETUP_FIX, essential: bool = True) -> Check:
    """Import ``name`` and report its version (any failure to import is reported, not raised)."""
    try:
        # learn2learn imports gym, which prints a notice on stderr: keep the report clean.
        with contextlib.redirect_stderr(io.StringIO()):
            module = importlib.import_module(name)
    except Exception as exc:  # a broken install raises more than ImportError
        return Check(name, False, f"not importable ({_error(exc)})", fix, essential)
    return Check(name, True, str(getattr(module, "__version__", "installed")), essential=essential)


def check_device() -> Check:
    try:
        import torch

        from .config import get_device

        device = get_device()
    except ValueError as exc:  # a bad FSLCOURSE_DEVICE, or a device this machine does not have
        return Check("device", False, _error(exc), DEVICE_FIX if "FSLCOURSE_DEVICE" in os.environ else SETUP_FIX)
    except Exception as exc:
        return Check("device", False, _error(exc), SETUP_FIX)
    if device.type == "cuda":  # cuda-ok: only names the GPU that get_device chose
        return Check("device", True, f"{device} ({torch.cuda.get_device_name(device)})")
    note = "" if torch.cuda.is_available() else " (no CUDA GPU: the quick profile is sized for a CPU)"
    return Check("device", True, f"{device}{note}")


def check_profile() -> Check:
    """Which profile suits the device the course will use (:func:`fslcourse.config.get_device`, as the device line):
    each notebook's ``profile`` parameter picks one (papermill ``-p profile``)."""
    try:
        from .config import get_device

        device = get_device()
    except Exception as exc:  # the device line says what is wrong and how to fix it
        return Check("profile", False, _error(exc), SETUP_FIX)
    if device.type == "cuda":  # cuda-ok: only reads the chosen device's type
        return Check("profile", True, f"{device}: the notebooks' full profile suits it (papermill -p profile full)")
    return Check("profile", True, f"{device}: the notebooks' quick profile (their default) suits it")


def check_numerics() -> Check:
    """``FSLCOURSE_NUMERICS``: native (torch's fastest kernels here) or portable (the same weights on any x86-64 CPU)."""
    try:
        from .numerics import NUMERICS, requested_numerics

        name = requested_numerics()
    except ValueError as exc:  # an unknown name
        return Check("numerics", False, _error(exc), f"set FSLCOURSE_NUMERICS to one of {', '.join(NUMERICS)} "
                                                     "(or unset it)")
    except Exception as exc:
        return Check("numerics", False, _error(exc), SETUP_FIX)
    if name == "portable":
        return Check("numerics", True, "portable (FSLCOURSE_NUMERICS): the same weights on any x86-64 CPU, slower")
    return Check("numerics", True, "native (default; FSLCOURSE_NUMERICS=portable trains the same weights on any "
                                   "x86-64 CPU, slower)")


def check_omniglot() -> Check:
    try:
        from .data import omniglot  # lazy: imports torch and PIL
    except Exception as exc:
        return Check("omniglot", False, f"fslcourse.data does not import ({_error(exc)})", SETUP_FIX)
    path = omniglot.find_omniglot()
    if path is not None:
        try:
            chars = omniglot._scan(path)
        except OSError as exc:
            return Check("omniglot", False, f"{path} cannot be read ({_error(exc)})", DATA_FIX)
        for part in omniglot.PARTS:
            if not any(c.part == part and c.files for c in chars):
                return Check("omniglot", False, f"{path}: {part} holds no drawings (no character folder with "
                             f"PNG files)", "re-download it with `python -m fslcourse download` or point "
                             "FSLCOURSE_DATA at a complete copy")
        try:
            omniglot._check_folders(path, chars)
        except ValueError as exc:
            return Check("omniglot", False, _error(exc), "restore the drawings, or delete the images_background or "
                         "images_evaluation folder that holds them and run `python -m fslcourse download` (it "
                         "fetches only missing folders)")
        return Check("omniglot", True, str(path))
    roots = getattr(omniglot, "data_roots", lambda: [])()
    where = ", ".join(str(root / "omniglot") for root in roots) or "FSLCOURSE_DATA and the user cache"
    asked = os.environ.get("FSLCOURSE_DATA")
    cached = omniglot.cache_dir() / "data" / "omniglot"
    if asked and all((cached / part).is_dir() for part in omniglot.PARTS):
        # the loader reads FSLCOURSE_DATA only: a typo there is not replaced by the copy in the cache
        return Check("omniglot", False, f"FSLCOURSE_DATA={asked} holds no Omniglot (a copy is in {cached})",
                     "correct FSLCOURSE_DATA (a folder holding omniglot/), or unset it to use that copy")
    return Check("omniglot", False, f"not found (looked in {where})", DATA_FIX)


def check_drawings(progress: bool = True) -> Check:
    """Open and decode every drawing of the Omniglot copy found (``doctor --drawings``, under a minute): the other
    checks read only the folders' listing, so a drawing cut short or garbled is otherwise found by the first load."""
    from .data import omniglot

    path = omniglot.find_omniglot()
    if path is None:
        return Check("drawings", False, "no Omniglot to open", DATA_FIX)
    from tqdm.auto import tqdm

    files = [c.folder / name for c in omniglot._scan(path) for name, _, _ in c.files]
    bad = []
    for file in tqdm(files, desc="Opening every drawing", disable=not progress, mininterval=1.0):
        try:
            omniglot._png_to_uint8(file)
        except (ValueError, OSError) as exc:
            bad.append(str(exc))
    if not bad:
        return Check("drawings", True, f"all {len(files):,} drawings open")
    return Check("drawings", False, f"{len(bad):,} of {len(files):,} drawings cannot be read; the first: {bad[0]}",
                 "restore the drawings, or delete the images_background or images_evaluation folder that holds them "
                 "and run `python -m fslcourse download` (it fetches only missing folders)")


def check_cache() -> Check:
    """The preprocessed image cache for the Omniglot copy found: usable, not built yet, corrupt, or unwritable."""
    try:
        from .data import omniglot
        path = omniglot.find_omniglot()
        if path is None:
            return Check("cache", True, "no Omniglot yet, so no image cache", essential=False)
        cache, problem = omniglot.cache_status(path)
    except Exception as exc:
        return Check("cache", False, f"cannot be checked ({_error(exc)})", "run the omniglot check's fix first",
                     essential=False)
    if problem is None:
        return Check("cache", True, str(cache), essential=False)
    if problem != "missing":
        return Check("cache", False, f"{cache} is corrupt ({problem})",
                     f"delete {cache}; the next load rebuilds it (a minute)", essential=False)
    from .io import check_writable
    try:
        check_writable(cache, "the image cache")
    except ValueError as exc:
        return Check("cache", False, str(exc), "set FSLCOURSE_CACHE to a writable folder (without a cache "
                     "every load preprocesses the images again)", essential=False)
    return Check("cache", True, f"not built yet: the first load preprocesses the images and writes {cache}",
                 essential=False)


def _run_of(stem: str, seed: int = 0) -> tuple[str, str, object] | None:
    """``(method, recipe name, Recipe)`` of a state file named ``METHOD-RECIPE.state.pt``, or ``("gan", recipe
    name, Recipe)`` of one DAGAN's run of the ``gan`` family (``gan-RECIPE-LOSS.state.pt``: one per loss, resumed
    by ``train gan --recipe RECIPE --resume``; ``seed`` is the run's); ``None`` when nothing registered has such a
    recipe (a hyphen may sit in either part)."""
    from .generative.gan import LOSSES
    from .training.api import recipe_for
    from .training.generators import FAMILY_RECIPES, dagan_recipe

    for i in (i for i, c in enumerate(stem) if c == "-"):
        try:
            return stem[:i], stem[i + 1:], recipe_for(stem[:i], stem[i + 1:])[1]
        except (KeyError, ValueError):
            continue
    dagan = [(r, loss) for r in FAMILY_RECIPES["gan"] for loss in LOSSES if stem == f"gan-{r}-{loss}"]
    return ("gan", dagan[0][0], dagan_recipe(*dagan[0], seed=seed)) if dagan else None


def _shown(path: Path) -> Path:
    """The path git knows a file by, from the repository root (the path itself outside it)."""
    try:
        return path.resolve().relative_to(Path(__file__).resolve().parent.parent)
    except ValueError:
        return path


def _goes_on_from(checkpoint: Path, state: dict) -> bool:
    """Whether ``checkpoint`` was written by the run ``state`` is a stretch of: the same recipe (its note aside),
    run to its last step, and a training log that begins with the state's steps and losses, as a run resumed
    from that state and finished leaves it (a remake after a change of recipe is not one)."""
    from .io import load_checkpoint

    try:
        ckpt = load_checkpoint(checkpoint)
    except Exception:  # an unreadable file is no evidence: the remake line stays
        return False
    log, mine = ckpt.get("log") or {}, state.get("log") or {}
    n = len(mine.get("loss") or [])
    same_recipe = {k: v for k, v in (ckpt.get("recipe") or {}).items() if k != "note"} == \
        {k: v for k, v in (state.get("recipe") or {}).items() if k != "note"}
    return (n > 0 and same_recipe and log.get("stopped") == "steps"
            and all(list(log.get(k) or [])[:n] == list(mine.get(k) or []) for k in ("step", "loss")))


def check_runs(folder=None) -> list[Check]:
    """One line per unfinished training run whose resumable state lies in ``folder`` (default: the package's
    checkpoints, where long runs commit theirs between sittings): how far it is and how to continue it."""
    try:
        from .io import load_checkpoint
        from .pretrained import CHECKPOINT_DIR
    except Exception:  # torch is missing: its own line says how to fix that
        return []
    unfinished = partial(Check, "unfinished", essential=False)  # a run's line never fails the report
    checks = []
    for path in sorted((folder or CHECKPOINT_DIR).glob("*.state.pt")):
        stem = path.name.removesuffix(".state.pt")
        try:
            state = load_checkpoint(path)
            run = _run_of(stem, seed=state["recipe"].get("seed", 0))
            step, steps, cpu_h = state["step"], state["recipe"]["steps"], state["cpu_seconds"] / 3600
            method = run is not None and run[0] != "gan"  # a method's score is its accuracy; a DAGAN's is not
            ways = f" ({state['recipe'].get('val_n_way', 5)}-way)" if method else ""
            best = ("no meta-validation yet" if state.get("best_step") is None else
                    f"best meta-validation {state['best_score']:.1f}{'%' if method else ''} at step "
                    f"{state['best_step']:,}{ways}")
        except Exception as exc:  # one odd file is one line, never the whole report
            checks.append(unfinished(False, f"{path.name} cannot be read ({type(exc).__name__})",
                                     f"restore it (git checkout -- {_shown(path)}) or delete it"))
            continue
        detail = (f"{stem}: step {step:,} of {steps:,} ({100 * step // steps}%), {cpu_h:.1f} CPU-hours so far, "
                  f"{best}")
        if run is None or run[2].differs_from(state["recipe"]):
            checks.append(unfinished(False, detail + "; no registered recipe matches it",
                                     "resume it with the train command that started it, adding --resume"))
            continue
        target = f"{run[0]}-{run[1]}.pt"  # the file the run writes (a DAGAN's state holds one loss's run of it)
        resume = f"python -m fslcourse train {run[0]} --recipe {run[1]} --resume"
        if (path.parent / target).exists():  # a checkpoint beside the state: resuming needs --overwrite
            # a leftover: every step done, or an earlier sitting's state of the run that wrote the file (its log
            # goes on from the state's); not a DAGAN's: the family's file is written once all its models are trained
            if run[0] != "gan" and (step >= steps or _goes_on_from(path.parent / target, state)):
                checks.append(unfinished(False, f"{detail}; {target} is there: the run has finished",
                                         f"remove the leftover state (git rm {_shown(path)}, or delete it)"))
            else:  # a remake of a committed checkpoint, interrupted: continue it, replacing the file at the end
                checks.append(unfinished(True, f"{detail}; continue the remake of {target}: {resume} --overwrite"))
            continue
        checks.append(unfinished(True, f"{detail}; continue: {resume}"))
    return checks


def report(drawings: bool = False) -> list[Check]:
    """Run every check, in the order they are printed (``drawings``: also open every drawing, after the omniglot
    check; skipped when that check fails, since its fix comes first)."""
    checks = [
        check_python(),
        check_package("torch"),
        check_package("torchvision"),
        check_package("learn2learn", "run `make setup` (it builds learn2learn from source: "
                                     "its PyPI sdist does not build on Python 3.11)"),
        check_package("ipywidgets"),
        check_package("ipycanvas", "only the drawing board (notebooks 02 and 11) needs it: run `make setup` "
                                   "(pip install ipycanvas==0.14.3)", essential=False),
        check_package("jupyterlab"),
        check_package("nbval", "only `make test` needs it: pip install -e '.[dev]' (make setup does it)",
                      essential=False),
        check_device(),
        check_profile(),
        check_numerics(),
        check_omniglot(),
    ]
    if drawings and checks[-1].ok:
        checks.append(check_drawings())
    return checks + [check_cache(), *check_runs()]


def format_report(checks: list[Check]) -> str:
    width = max(len(check.name) for check in checks)
    lines = ["fslcourse doctor"]
    for check in checks:
        lines.append(f"  {check.status:<4}  {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"  {'':<4}  {'':<{width}}  -> {check.fix}")
    failed = [check.name for check in checks if check.status == "FAIL"]
    if failed:
        lines.append(f"Missing: {', '.join(failed)}. Fix the lines marked FAIL, then run this again.")
    else:
        warned = [check.name for check in checks if check.status == "warn"]
        note = f" Warnings: {', '.join(warned)} (see the lines marked warn)." if warned else ""
        lines.append("Everything essential is here." + note)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the report; return 0 when everything essential is present, else 1."""
    parser = argparse.ArgumentParser(prog="python -m fslcourse doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--drawings", action="store_true", help="also open every Omniglot drawing (under a minute)")
    args = parser.parse_args(argv if argv is not None else [])
    checks = report(drawings=args.drawings)
    print(format_report(checks))
    return 1 if any(check.status == "FAIL" for check in checks) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
