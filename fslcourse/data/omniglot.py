"""Omniglot (Lake et al. 2015): find, download, preprocess, cache and split.

Taught in ``notebooks/01_episodes.ipynb``.

Splits follow the standard background/evaluation protocol:

* meta-train: the 30 background alphabets, minus the meta-validation alphabets;
* meta-validation: four background alphabets held out (:data:`VAL_ALPHABETS`);
* meta-test: the 20 evaluation alphabets.

No character appears in two splits, and a character's rotations stay with it.
The data is looked for in ``$FSLCOURSE_DATA/omniglot`` first, then in the user
cache (``$XDG_CACHE_HOME/fslcourse`` or ``~/.cache/fslcourse``). After the first
load a preprocessed ``uint8`` tensor file in the cache makes later loads fast.
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..io import atomic_torch_save
from .download import download_omniglot
from .splits import ImageSplit

PARTS = ("images_background", "images_evaluation")
VAL_ALPHABETS = ("Anglo-Saxon_Futhorc", "Bengali", "Futurama", "Tagalog")
IMAGE_SIZE = 28
CACHE_VERSION = 1


def cache_dir() -> Path:
    """The user cache directory: ``$FSLCOURSE_CACHE``, else ``$XDG_CACHE_HOME/fslcourse``, else ``~/.cache/fslcourse``."""
    if os.environ.get("FSLCOURSE_CACHE"):
        return Path(os.environ["FSLCOURSE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fslcourse"


def data_roots() -> list[Path]:
    """Where the loader looks, in order: ``$FSLCOURSE_DATA``, then the user cache."""
    roots = []
    if os.environ.get("FSLCOURSE_DATA"):
        roots.append(Path(os.environ["FSLCOURSE_DATA"]).expanduser())
    roots.append(cache_dir() / "data")
    return roots


def find_omniglot() -> Path | None:
    """Return the ``omniglot`` directory holding both image folders, or ``None``."""
    for root in data_roots():
        for cand in (root / "omniglot", root):
            if all((cand / p).is_dir() for p in PARTS):
                return cand
    return None


def load_image(path: str | Path, image_size: int = IMAGE_SIZE) -> torch.Tensor:
    """Turn one Omniglot-style PNG into the model's input.

    The image is converted to greyscale, resized to ``image_size`` with a Lanczos
    filter and inverted, so ink is 1.0 and paper is 0.0.

    Args:
        path: a PNG (any size; dark ink on light paper).
        image_size: output height and width.

    Returns:
        Float32 tensor ``(1, image_size, image_size)`` in ``[0, 1]``, ink = 1.
    """
    return torch.from_numpy(_png_to_uint8(path, image_size)).float().div_(255.0).unsqueeze(0)


def _png_to_uint8(path, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """``(H, W)`` uint8 array, ink = 255; the one preprocessing step shared by every loader."""
    with Image.open(path) as im:
        im = im.convert("L").resize((image_size, image_size), Image.LANCZOS)
        return 255 - np.asarray(im, dtype=np.uint8)


def _load_character(args) -> np.ndarray:
    folder, image_size = args
    files = sorted(Path(folder).glob("*.png"))
    return np.stack([_png_to_uint8(f, image_size) for f in files])


def _cache_file(root: Path, image_size: int) -> Path:
    """Cache path keyed by the source folder, its modification times, the size and the format version."""
    stamp = "-".join(str(int((root / p).stat().st_mtime)) for p in PARTS)
    digest = hashlib.sha256(f"{root.resolve()}|{stamp}|{image_size}|{CACHE_VERSION}".encode()).hexdigest()[:16]
    return cache_dir() / f"omniglot-{image_size}px-{digest}.pt"


def _read_folders(root: Path, image_size: int, progress: bool) -> dict:
    from tqdm.auto import tqdm

    folders, names, alphabets, background = [], [], [], []
    for part in PARTS:
        for alpha in sorted(p for p in (root / part).iterdir() if p.is_dir()):
            for char in sorted(p for p in alpha.iterdir() if p.is_dir()):
                folders.append(char)
                names.append(f"{alpha.name}/{char.name}")
                alphabets.append(alpha.name)
                background.append(part == "images_background")
    workers = max(1, min(len(os.sched_getaffinity(0)), 8))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        arrays = list(tqdm(pool.map(_load_character, [(f, image_size) for f in folders], chunksize=16),
                           total=len(folders), desc="Preprocessing Omniglot", disable=not progress))
    counts = {a.shape[0] for a in arrays}
    if len(counts) != 1:
        raise ValueError(f"expected the same number of drawings per character in {root}, found {sorted(counts)}")
    return {"images": torch.from_numpy(np.stack(arrays)), "names": names, "alphabets": alphabets,
            "background": background, "version": CACHE_VERSION}


@dataclass
class Omniglot:
    """The three Omniglot splits.

    Attributes:
        train: meta-train :class:`ImageSplit` (background alphabets minus validation).
        val: meta-validation split (:data:`VAL_ALPHABETS`).
        test: meta-test split (evaluation alphabets).
        root: the directory the images were read from.
    """

    train: ImageSplit
    val: ImageSplit
    test: ImageSplit
    root: Path

    def split(self, name: str) -> ImageSplit:
        """Return the split called ``train``, ``val`` or ``test``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"split={name!r} is not known; use 'train', 'val' or 'test'")
        return getattr(self, name)


def load_omniglot(image_size: int = IMAGE_SIZE, rotations: bool = True, download: bool = True,
                  progress: bool = True, device=None) -> Omniglot:
    """Load Omniglot's meta-train / meta-validation / meta-test splits.

    Args:
        image_size: height and width of every image (28 as in the papers).
        rotations: count 90°, 180° and 270° rotations as new classes.
        download: fetch and verify the official zips when no copy is found.
        progress: show progress bars for downloading and preprocessing.
        device: where the image tensors live (episodes are built there).

    Returns:
        An :class:`Omniglot` with ``train``, ``val`` and ``test`` splits.

    Raises:
        FileNotFoundError: no copy was found and ``download`` is False.
    """
    root = find_omniglot()
    if root is None:
        if not download:
            looked = ", ".join(str(r) for r in data_roots())
            raise FileNotFoundError(
                f"Omniglot was not found (looked in {looked}); set FSLCOURSE_DATA to a folder holding "
                "omniglot/images_background and omniglot/images_evaluation, or pass download=True"
            )
        root = download_omniglot(data_roots()[-1], progress=progress)
    cache = _cache_file(root, image_size)
    if cache.exists():
        data = torch.load(cache, weights_only=True)
    else:
        data = _read_folders(root, image_size, progress)
        atomic_torch_save(data, cache)
    rots = (0, 1, 2, 3) if rotations else (0,)
    images = data["images"]
    if device is not None:
        images = images.to(device)

    def make(name, keep):
        idx = [i for i, k in enumerate(keep) if k]
        return ImageSplit(name, images[idx], [data["names"][i] for i in idx],
                          [data["alphabets"][i] for i in idx], rots)

    bg, alphas = data["background"], data["alphabets"]
    is_val = [b and a in VAL_ALPHABETS for b, a in zip(bg, alphas)]
    return Omniglot(
        train=make("train", [b and not v for b, v in zip(bg, is_val)]),
        val=make("val", is_val),
        test=make("test", [not b for b in bg]),
        root=root,
    )
