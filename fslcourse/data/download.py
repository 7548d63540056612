"""Checked downloads and safe archive extraction for the course's data.

Taught in ``notebooks/01_episodes.ipynb`` (where the data comes from).

Every download is verified against a known md5 before it is used, is written to a
temporary file first and renamed into place, so an interrupted or corrupt
download leaves nothing half-written. Zip members that would land outside the
target directory (``../`` or absolute paths) are rejected.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from ..io import check_writable

OMNIGLOT_URL = "https://github.com/brendenlake/omniglot/raw/master/python/{name}.zip"
# md5s of the official zips (brendenlake/omniglot); see shared/data/omniglot/MANIFEST.md.
OMNIGLOT_MD5 = {
    "images_background": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation": "6b91aef0f799c5bb55b94e3f2daec811",
}


def md5sum(path: str | Path, chunk: int = 1 << 20) -> str:
    """Return the hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, dest: str | Path, md5: str, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` atomically and verify its md5.

    The bytes go to a temporary file beside ``dest``; only a file whose md5
    matches is renamed to ``dest``. A file already at ``dest`` with the right md5
    is reused.

    Args:
        url: ``https://``, ``http://`` or ``file://`` address.
        dest: where the verified file ends up.
        md5: the expected hex digest.
        progress: show a tqdm progress bar.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: the downloaded bytes do not have the expected md5 (nothing is kept).
    """
    dest = Path(dest)
    if dest.exists() and md5sum(dest) == md5:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        try:
            response = urllib.request.urlopen(url, timeout=60)
        except (urllib.error.URLError, OSError) as err:
            os.close(fd)
            raise ConnectionError(
                f"could not download {url} ({getattr(err, 'reason', err)}); check the internet connection, "
                "or put an extracted copy in $FSLCOURSE_DATA/omniglot and set FSLCOURSE_DATA"
            ) from err
        with os.fdopen(fd, "wb") as out, response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                done = 0
                try:
                    for block in iter(lambda: response.read(1 << 16), b""):
                        out.write(block)
                        bar.update(len(block))
                        done += len(block)
                except (urllib.error.URLError, ConnectionError, TimeoutError) as err:  # the link broke part-way
                    raise ConnectionError(
                        f"the download of {url} broke off after {done:,} bytes ({err}); run the same command "
                        "again (nothing partial is kept), or put an extracted copy in $FSLCOURSE_DATA/omniglot"
                    ) from err
        actual = md5sum(tmp)
        if actual != md5:
            raise ValueError(
                f"md5 mismatch for {url}: expected {md5}, got {actual}; the download is corrupt "
                "or the file changed upstream. Delete any partial copy and try again."
            )
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def _check_member(name: str, target: Path) -> None:
    """Raise ``ValueError`` if archive member ``name`` would land outside ``target``."""
    resolved = (target / name).resolve()
    if name.startswith(("/", "\\")) or not resolved.is_relative_to(target.resolve()):
        raise ValueError(
            f"refusing to extract {name!r}: the path escapes the target directory {target}; "
            "the archive is malformed or malicious"
        )


def safe_extract_zip(archive: str | Path, target: str | Path) -> list[str]:
    """Extract a zip into ``target``, rejecting members that escape it.

    All members are checked before anything is written; extraction happens in a
    temporary directory beside ``target`` and each top-level entry is then
    renamed into place, so a failure leaves ``target`` as it was.

    Args:
        archive: the zip file.
        target: the directory to extract into (created if missing).

    Returns:
        The top-level names that were placed into ``target``.

    Raises:
        ValueError: a member is absolute or contains ``..`` that escapes ``target``.
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        for name in names:
            _check_member(name, target)
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target))
        try:
            zf.extractall(staging)
            placed = []
            for entry in sorted(staging.iterdir()):
                if entry.name == "__MACOSX":
                    continue
                final = target / entry.name
                if final.exists():
                    shutil.rmtree(final) if final.is_dir() else final.unlink()
                os.replace(entry, final)
                placed.append(entry.name)
            return placed
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def download_omniglot(root: str | Path, parts=("images_background", "images_evaluation"),
                      url_template: str = OMNIGLOT_URL, md5s: dict | None = None,
                      progress: bool = True) -> Path:
    """Download, verify and extract the official Omniglot zips into ``root/omniglot``.

    Args:
        root: the data directory (``FSLCOURSE_DATA`` or the user cache).
        parts: which zips to fetch.
        url_template: address with a ``{name}`` placeholder (tests use ``file://``).
        md5s: expected md5 per part; defaults to the official ones.
        progress: show progress bars.

    Returns:
        The ``omniglot`` directory holding ``images_background/`` and ``images_evaluation/``.
    """
    md5s = OMNIGLOT_MD5 if md5s is None else md5s
    if Path(root).exists() and not Path(root).is_dir():
        raise ValueError(f"the data folder {root} is a file; give a folder (--root DIR)")
    out = Path(root) / "omniglot"
    for name in parts:
        if (out / name).is_dir() and next((out / name).rglob("*.png"), None) is not None:
            continue  # already there (an empty folder is downloaded again)
        check_writable(out / "downloads" / f"{name}.zip", "the download")  # a bad --root fails here, in one line
        archive = download_file(url_template.format(name=name), out / "downloads" / f"{name}.zip",
                                md5s[name], progress=progress)
        safe_extract_zip(archive, out)
    return out
