#!/usr/bin/env python3
"""Build and install learn2learn 0.2.0 into the Python that runs this script.

Why: learn2learn 0.2.0 (its latest release) ships Cython-generated C files in its
PyPI sdist that were made by an old Cython; they include ``longintrepr.h``, which
Python 3.11 no longer has, so ``pip install learn2learn`` fails on Python 3.11.
This script regenerates the C files with a current Cython and builds a wheel:

1. download the sdist (``pip download --no-binary :all:``) and check its sha256;
2. unpack it in a temporary folder;
3. install Cython, setuptools and wheel (build tools only);
4. ``cython -3`` the three ``.pyx`` files (this rewrites the stale ``.c`` files);
   drop ``gsutil`` and ``qpth`` from its ``install_requires``: ``import learn2learn``
   needs neither, and qpth requires ``numpy<2``, so pip would downgrade numpy for it;
5. ``pip wheel --no-deps --no-build-isolation`` and ``pip install --no-deps`` the wheel;
6. install the runtime packages ``import learn2learn`` needs (gym, scipy, requests, tqdm);
7. check ``import learn2learn`` from a neutral folder.

Nothing is written into the repository. ``make setup`` runs it as
``.venv/bin/python scripts/build_learn2learn.py``; conda users run
``python scripts/build_learn2learn.py`` inside their environment. It does nothing
when learn2learn 0.2.0 is already importable (``--force`` rebuilds).

Standard library only.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "0.2.0"
SDIST_NAME = f"learn2learn-{VERSION}.tar.gz"
SDIST_SHA256 = "69f1d7cb0d0a6be7a2c6ad8e83e2ebbe70fb05e51d61e45e63078b40c75ea419"
PYX_FILES = (
    "learn2learn/data/meta_dataset.pyx",
    "learn2learn/data/task_dataset.pyx",
    "learn2learn/data/transforms.pyx",
)
BUILD_TOOLS = ("cython>=3.0,<4", "setuptools", "wheel")
# learn2learn 0.2.0 declares these, but `import learn2learn` needs neither (gsutil is
# used by one dataset's download, qpth by MetaOptNet's solver); qpth requires numpy<2,
# so keeping them would make pip downgrade numpy. They are removed from the wheel's
# metadata before building.
DROPPED_REQUIREMENTS = ("'gsutil',", "'qpth>=0.0.15',")
# What `import learn2learn` needs besides numpy/torch/torchvision.
# gym and gym-notices are pinned: gym prints gym-notices' text on import, and
# notebooks that store that output need it to stay the same.
RUNTIME_DEPS = ("gym==0.26.2", "gym-notices==0.1.0", "scipy", "requests", "tqdm")
PREREQUISITES = {"torch": "torch==2.14.1", "torchvision": "torchvision==0.29.1", "numpy": "numpy"}


class StepError(RuntimeError):
    """A build step failed; carries the step's name and how to fix it."""

    def __init__(self, step: str, problem: str, fix: str) -> None:
        super().__init__(f"step '{step}' failed: {problem}\n  fix: {fix}")


def say(message: str) -> None:
    print(f"[build_learn2learn] {message}", flush=True)


def run(step: str, cmd: list[str], fix: str, cwd: Path | None = None) -> None:
    """Run ``cmd`` with its output on the console; raise :class:`StepError` if it fails."""
    say(f"{step}: {' '.join(cmd)}")
    try:
        result = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL)
    except OSError as error:
        raise StepError(step, f"could not start {cmd[0]!r} ({error})", fix) from error
    if result.returncode != 0:
        raise StepError(step, f"command exited with status {result.returncode}", fix)


def pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


def installed_version(neutral_dir: Path) -> str | None:
    """learn2learn's version if ``import learn2learn`` works in this Python, else ``None``.

    A learn2learn whose metadata still requires gsutil or qpth (installed by other
    means) counts as ``"<version> (unpatched)"``, so that it gets rebuilt.
    Runs in a separate process from ``neutral_dir`` so that a ``learn2learn/`` folder in
    the current directory (an unpacked sdist) cannot be imported by mistake.
    """
    code = (
        "import importlib.metadata as m, re, learn2learn\n"
        "names = {re.split(r'[^A-Za-z0-9_.-]', r, maxsplit=1)[0].lower() for r in m.requires('learn2learn') or []}\n"
        "print(learn2learn.__version__ + (' (unpatched)' if names & {'gsutil', 'qpth'} else ''))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=neutral_dir, capture_output=True, text=True,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        return None
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else None


def import_error(neutral_dir: Path) -> str:
    """The last line of the traceback of ``import learn2learn`` (for error messages)."""
    result = subprocess.run(
        [sys.executable, "-c", "import learn2learn"], cwd=neutral_dir, capture_output=True,
        text=True, stdin=subprocess.DEVNULL,
    )
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


def check_prerequisites() -> None:
    """Fail early if torch, torchvision or numpy is missing: learn2learn imports all three."""
    from importlib.util import find_spec

    missing = [spec for name, spec in PREREQUISITES.items() if find_spec(name) is None]
    if missing:
        raise StepError(
            "check prerequisites",
            f"{', '.join(missing)} not installed in {sys.executable}",
            f"{sys.executable} -m pip install {' '.join(missing)}  (then run this script again)",
        )


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_sdist(work: Path, sdist: Path | None) -> Path:
    """Download the sdist into ``work`` (or copy ``sdist``) and check its sha256."""
    work.mkdir(parents=True, exist_ok=True)
    if sdist is None:
        run(
            "download sdist",
            pip("download", f"learn2learn=={VERSION}", "--no-deps", "--no-binary", ":all:",
                "-d", str(work)),
            "check that PyPI can be reached (proxy, network), or download "
            f"{SDIST_NAME} by hand and pass --sdist PATH",
        )
        candidates = sorted(work.glob("learn2learn-*.tar.gz"))
        if len(candidates) != 1:
            raise StepError("download sdist", f"expected {SDIST_NAME}, found {candidates}",
                            f"download {SDIST_NAME} by hand and pass --sdist PATH")
        path = candidates[0]
    else:
        if not sdist.is_file():
            raise StepError("download sdist", f"{sdist} is not a file", "pass the path of " + SDIST_NAME)
        path = work / SDIST_NAME
        shutil.copyfile(sdist, path)
    found = sha256(path)
    if found != SDIST_SHA256:
        raise StepError(
            "verify sdist",
            f"sha256 of {path.name} is {found}, expected {SDIST_SHA256}",
            "the file is not the learn2learn 0.2.0 release this script was written for; "
            "do not build it. Check your package index/mirror, or delete the file and retry",
        )
    say(f"verify sdist: sha256 {found} matches")
    return path


def unpack(archive: Path, work: Path) -> Path:
    target = work / "src"
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(target, filter="data")
            else:  # Python < 3.11.4
                tar.extractall(target)  # noqa: S202 (checksum verified above)
    except (tarfile.TarError, OSError) as error:
        raise StepError("unpack sdist", str(error), "delete the temporary folder and retry") from error
    source = target / f"learn2learn-{VERSION}"
    if not (source / "setup.py").is_file():
        raise StepError("unpack sdist", f"no setup.py in {source}", "the sdist layout changed; report it")
    return source


def drop_requirements(setup_py: Path) -> None:
    """Remove :data:`DROPPED_REQUIREMENTS` from learn2learn's ``setup.py``."""
    text = setup_py.read_text(encoding="utf8")
    for requirement in DROPPED_REQUIREMENTS:
        if text.count(requirement) != 1:
            raise StepError("drop gsutil and qpth", f"{requirement} not found once in {setup_py}",
                            "the sdist is not the one this script was written for; report it")
        text = text.replace(requirement, "")
    setup_py.write_text(text, encoding="utf8")
    say(f"drop gsutil and qpth: removed {' '.join(DROPPED_REQUIREMENTS)} from setup.py's install_requires")


def cython_command() -> list[str]:
    """The ``cython`` command of this Python's environment (``python -m cython`` as fallback)."""
    script = Path(sys.executable).parent / "cython"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cython"]


def build(work: Path, sdist: Path | None) -> None:
    check_prerequisites()
    archive = fetch_sdist(work / "download", sdist)
    source = unpack(archive, work)
    run("install build tools", pip("install", *BUILD_TOOLS),
        f"{sys.executable} -m pip install 'cython>=3' setuptools wheel  (needs PyPI)")
    run("regenerate C sources", [*cython_command(), "-3", *PYX_FILES],
        "check that Cython 3 is installed in this environment", cwd=source)
    drop_requirements(source / "setup.py")
    wheels = work / "wheels"
    run("build wheel",
        pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), "."),
        "a C compiler and the Python headers are needed: on Debian/Ubuntu "
        "`apt-get install build-essential python3-dev`; on conda `conda install compilers`",
        cwd=source)
    built = sorted(wheels.glob("learn2learn-*.whl"))
    if len(built) != 1:
        raise StepError("build wheel", f"expected one learn2learn wheel, found {built}", "read pip's output above")
    run("install wheel", pip("install", "--no-deps", "--force-reinstall", str(built[0])),
        "read pip's output above")
    run("install runtime dependencies", pip("install", *RUNTIME_DEPS),
        f"{sys.executable} -m pip install {' '.join(RUNTIME_DEPS)}  (needs PyPI)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if learn2learn 0.2.0 imports")
    parser.add_argument("--sdist", type=Path, help=f"use this local {SDIST_NAME} instead of downloading it")
    args = parser.parse_args(argv)

    say(f"target Python: {sys.executable} ({sys.version.split()[0]})")
    with tempfile.TemporaryDirectory(prefix="build-learn2learn-") as tmp:
        work = Path(tmp)
        neutral = work / "neutral"
        neutral.mkdir()
        version = installed_version(neutral)
        if version == VERSION and not args.force:
            say(f"skipped: learn2learn {VERSION} is already importable (use --force to rebuild)")
            return 0
        found = version or "not importable"
        say(f"building learn2learn {VERSION} from source (found in this Python: {found})")
        try:
            build(work, args.sdist.resolve() if args.sdist else None)
        except StepError as error:
            print(f"[build_learn2learn] ERROR: {error}", file=sys.stderr, flush=True)
            return 1
        version = installed_version(neutral)
        if version != VERSION:
            print(
                f"[build_learn2learn] ERROR: step 'check import' failed: `import learn2learn` "
                f"gives {version or import_error(neutral)!r}, expected version {VERSION}\n"
                "  fix: read the error above; a missing module means a runtime dependency is "
                f"missing: {sys.executable} -m pip install <module>",
                file=sys.stderr, flush=True,
            )
            return 1
    say(f"done: learn2learn {VERSION} imports in {sys.executable}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PIP_NO_INPUT", "1")
    sys.exit(main())
