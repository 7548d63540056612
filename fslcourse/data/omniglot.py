"""Omniglot (Lake et al. 2015): find, download, preprocess, cache and split.

Taught in ``notebooks/01_episodes.ipynb``.

Two protocols (``load_omniglot(split=...)``):

* ``"alphabet"`` (the course's default): meta-train is the 30 background
  alphabets minus four held out for meta-validation (:data:`VAL_ALPHABETS`); meta-test is the 20
  evaluation alphabets, so every test character comes from an alphabet never seen in training;
* ``"vinyals"``: the character split of Vinyals et al. (2016), arXiv:1606.04080, used by the
  published figures of Matching Networks and ProtoNet: both official sets pooled, 1,028 / 172 / 423
  characters for train / val / test (4,112 / 688 / 1,692 classes with rotations), read from the lists
  shipped in ``fslcourse/data/vinyals/``. The lists run alphabet by alphabet: the test characters come
  from 13 alphabets, only one of which (Gurmukhi) also has training characters. The codes behind MAML's,
  Reptile's and the Relation Network's figures do not read these lists: each shuffles all 1,623
  characters with its own seed and keeps 1,200 for training (MAML's 100 of them for validation) and 423
  for test, the same sizes with other test characters, from all 50 alphabets (the effect on a figure is
  not measured).

In both, no character appears in two splits, and a character's rotations stay with it.
The data is looked for in ``$FSLCOURSE_DATA/omniglot`` when that is set (only there), else in the
user cache (``$XDG_CACHE_HOME/fslcourse`` or ``~/.cache/fslcourse``). After the first
load a preprocessed ``uint8`` tensor file in the cache makes later loads fast. The
cache is keyed by the folders' content (every drawing's path, size and modification
time), so an edited drawing or a new character rebuilds it; a corrupt cache file is
rebuilt, and a cache folder that cannot be written only costs speed (one warning).
"""
from __future__ import annotations

import hashlib
import os
import sys
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..config import get_device
from ..io import atomic_torch_save
from .download import download_omniglot
from .episodes import _positive
from .splits import ImageSplit

PARTS = ("images_background", "images_evaluation")
PROTOCOLS = ("alphabet", "vinyals")
VINYALS_DIR = Path(__file__).parent / "vinyals"
VAL_ALPHABETS = ("Anglo-Saxon_Futhorc", "Bengali", "Futurama", "Tagalog")
# sha256 (first 16 hex digits) of each shipped Vinyals list's characters, in order, one per line: an edited list
# (a character dropped, moved to another split, or the lines reordered) would change the papers' episodes silently
VINYALS_SHA256 = {"train": "7a8d31c8748445c8", "val": "11922badf662886a", "trainval": "8daa64a851bc99b9",
                  "test": "c4823b72623bcabe"}
IMAGE_SIZE = 28
CACHE_VERSION = 2  # 2: keyed by the images' content; transparency laid on white paper


def cache_dir() -> Path:
    """The user cache directory: ``$FSLCOURSE_CACHE``, else ``$XDG_CACHE_HOME/fslcourse``, else ``~/.cache/fslcourse``."""
    if os.environ.get("FSLCOURSE_CACHE"):
        return Path(os.environ["FSLCOURSE_CACHE"]).expanduser()  # as FSLCOURSE_DATA: "~/cache" is in the home
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fslcourse"


def data_roots() -> list[Path]:
    """Where the loader looks: ``$FSLCOURSE_DATA`` only, when it is set (the user said where the data is: a
    copy elsewhere must not stand in for a mistyped path); else the user cache."""
    if os.environ.get("FSLCOURSE_DATA"):
        return [Path(os.environ["FSLCOURSE_DATA"]).expanduser()]
    return [cache_dir() / "data"]


def find_omniglot() -> Path | None:
    """Return the ``omniglot`` directory holding both image folders, or ``None``."""
    for root in data_roots():
        for cand in (root / "omniglot", root):
            if all((cand / p).is_dir() for p in PARTS):
                return cand
    return None


def load_image(path: str | Path, image_size: int = IMAGE_SIZE) -> torch.Tensor:
    """Turn one Omniglot-style PNG into the model's input (:func:`preprocess_image` on the file's pixels).

    Transparent pixels (an RGBA or LA image, or a palette or greyscale image with a
    transparent colour) are laid on white paper first. The image is then converted to
    greyscale, centred on a square of its own paper if it is not square (its shape is kept), resized to
    ``image_size`` with a Lanczos filter and inverted, so ink is
    1.0 and paper (and transparency) is 0.0.

    Args:
        path: a PNG (any size; dark ink on light or transparent paper).
        image_size: output height and width (the course's methods read 28, the default; see ``FewShotClassifier.check_support``).

    Returns:
        Float32 tensor ``(1, image_size, image_size)`` in ``[0, 1]``, ink = 1.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a readable image (truncated, corrupt, not an image); the
            message names the file.
    """
    image_size = _positive("image_size", image_size)
    return _as_input(_png_to_uint8(path, image_size))


def preprocess_image(image, image_size: int = IMAGE_SIZE) -> torch.Tensor:
    """Turn a picture already in memory into the model's input, exactly as :func:`load_image` does a file.

    The drawing board of ``notebooks/02_protonet.ipynb`` feeds its canvases through this, so a drawing
    saved as a PNG and read back with :func:`load_image` gives the same tensor.

    Args:
        image: a ``PIL.Image`` (any mode and size; dark ink on light or transparent paper), or a
            ``uint8`` array of its pixels: ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA
            (e.g. an ``ipycanvas`` canvas's ``get_image_data()``: transparent paper counts as white).
        image_size: output height and width (the course's methods read 28, the default).

    Returns:
        Float32 tensor ``(1, image_size, image_size)`` in ``[0, 1]``, ink = 1.

    Raises:
        ValueError: ``image`` is not a PIL image or a ``uint8`` array of one of those shapes.
    """
    image_size = _positive("image_size", image_size)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"image has dtype {image.dtype}; give uint8 pixels (0 = black ink, 255 = white paper) "
                             "or a PIL image")
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
            raise ValueError(f"image has shape {tuple(image.shape)}; give (H, W) grey, (H, W, 3) RGB or "
                             "(H, W, 4) RGBA pixels")
        image = Image.fromarray(np.ascontiguousarray(image))
    elif not isinstance(image, Image.Image):
        raise ValueError(f"image is a {type(image).__name__}; give a PIL image or a uint8 array of its pixels")
    return _as_input(_to_uint8(image, image_size))


def _as_input(pixels: np.ndarray) -> torch.Tensor:
    """``(H, W)`` uint8 (ink = 255) -> float32 ``(1, H, W)`` in ``[0, 1]``, ink = 1."""
    return torch.from_numpy(pixels).float().div_(255.0).unsqueeze(0)  # (1, H, W)


def _on_paper(im: Image.Image) -> Image.Image:
    """``im`` composited onto opaque white paper when it has any transparency, else ``im`` itself."""
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return im


def _to_uint8(im: Image.Image, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """``(image_size, image_size)`` uint8 array, ink = 255: paper under transparency, greyscale, Lanczos, inversion.

    The one preprocessing step shared by every loader (:func:`load_image`, the cache, :func:`preprocess_image`).
    """
    if im.mode.startswith("I;16") or im.mode == "I":  # 16-bit grey: convert("L") clips every value above 255
        values = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or values.max() > 255 else 255.0
        im = Image.fromarray(np.clip(np.rint(values / top * 255), 0, 255).astype(np.uint8), "L")
    im = _square(_on_paper(im).convert("L")).resize((image_size, image_size), Image.LANCZOS)
    return 255 - np.asarray(im, dtype=np.uint8)


def _square(im: Image.Image) -> Image.Image:
    """A greyscale ``im`` centred on a square of its own paper (the median of its border pixels), so a drawing keeps
    its shape: a phone photo (4:3) was squashed into 28×28, its strokes a third narrower. A square image (every
    Omniglot drawing) is returned as it is."""
    width, height = im.size
    if width == height:
        return im
    pixels = np.asarray(im)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    side = max(width, height)
    paper = Image.new("L", (side, side), int(np.median(border)))
    paper.paste(im, ((side - width) // 2, (side - height) // 2))
    return paper


def _png_to_uint8(path, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """``(H, W)`` uint8 array, ink = 255, of the image file ``path`` (:func:`_to_uint8`); unreadable files name themselves."""
    try:
        with Image.open(path) as im:  # a phone photo stores its rotation apart: apply it (a rotation is a class)
            return _to_uint8(ImageOps.exif_transpose(im), image_size)
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, Image.DecompressionBombError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        part = next((p for p in Path(path).parents if p.name in PARTS), None)  # an Omniglot drawing's folder
        again = (f", or delete {part} and run `python -m fslcourse download` (it fetches only missing folders)"
                 if part is not None else "")
        raise ValueError(f"{path} is not a readable image ({reason}); replace the file{again}") from None


def _load_character(args) -> np.ndarray:
    files, image_size = args
    return np.stack([_png_to_uint8(f, image_size) for f in files])  # (n_drawings, H, W) uint8


@dataclass(frozen=True)
class _Character:
    """One character folder as found on disk: where, and its drawings with their sizes and times."""

    part: str
    alphabet: str
    folder: Path
    files: tuple[tuple[str, int, int], ...]  # (file name, size in bytes, mtime in ns), sorted by name


def _scan(root: Path) -> list[_Character]:
    """Every character folder under both parts of ``root``, in a fixed order, with its PNG files' stats."""
    chars = []
    for part in PARTS:
        for alpha in sorted(p for p in (root / part).iterdir() if p.is_dir()):
            for char in sorted(p for p in alpha.iterdir() if p.is_dir()):
                with os.scandir(char) as it:
                    files = sorted((e.name, st.st_size, st.st_mtime_ns) for e in it
                                   if e.name.endswith(".png") and not e.name.startswith(".") and e.is_file() for st in (e.stat(),))
                chars.append(_Character(part, alpha.name, char, tuple(files)))
    return chars


def _content_key(root: Path, chars: list[_Character], image_size: int) -> str:
    """A hash of every image file's path, size and modification time, the image size and the cache format."""
    h = hashlib.sha256(f"{root.resolve()}|{image_size}|{CACHE_VERSION}\n".encode())
    for c in chars:
        h.update(f"{c.part}/{c.alphabet}/{c.folder.name}\n".encode())
        for name, size, mtime in c.files:
            h.update(f"{name}|{size}|{mtime}\n".encode())
    return h.hexdigest()[:16]


def _cache_file(root: Path, image_size: int, chars: list[_Character]) -> Path:
    """Cache path keyed by the content of the image folders ``chars`` (see :func:`_content_key`)."""
    return cache_dir() / f"omniglot-{image_size}px-{_content_key(root, chars, image_size)}.pt"


def _check_folders(root: Path, chars: list[_Character]) -> None:
    """Raise a ValueError naming the folder when a part has no characters or a character folder
    has no drawings or a different number of drawings than the others, or naming an empty (0-byte) drawing."""
    for part in PARTS:
        if not any(c.part == part for c in chars):
            raise ValueError(f"{root / part} holds no character folders; re-download Omniglot with "
                             f"`python -m fslcourse download` (or point FSLCOURSE_DATA at a complete copy)")
    empty = [c.folder for c in chars if not c.files]
    if empty:
        raise ValueError(f"character folder {empty[0]} has no PNG drawings ({len(empty)} such folder(s)); "
                         f"restore its drawings or remove the folder")
    blank = [(c, name) for c in chars for name, size, _ in c.files if size == 0]  # an interrupted copy: said before any is read
    if blank:
        c, name = blank[0]
        raise ValueError(f"{c.folder / name} is empty (0 bytes; {len(blank)} such drawing(s)); replace it, or delete "
                         f"{root / c.part} and run `python -m fslcourse download` (it fetches only missing folders)")
    counts = Counter(len(c.files) for c in chars)
    usual = counts.most_common(1)[0][0]
    odd = [c for c in chars if len(c.files) != usual]
    if odd:
        raise ValueError(f"character folder {odd[0].folder} has {len(odd[0].files)} drawings but the others "
                         f"have {usual} ({len(odd)} such folder(s)); every character needs the same number: "
                         f"restore or remove drawings")


def _read_folders(root: Path, image_size: int, progress: bool, chars: list[_Character]) -> dict:
    from tqdm.auto import tqdm

    _check_folders(root, chars)
    jobs = [([c.folder / name for name, _, _ in c.files], image_size) for c in chars]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()  # Linux only
    workers = max(1, min(cores or 1, 8))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        arrays = list(tqdm(pool.map(_load_character, jobs, chunksize=16),
                           total=len(jobs), desc="Preprocessing Omniglot", disable=not progress))
    return {"images": torch.from_numpy(np.stack(arrays)), "names": [f"{c.alphabet}/{c.folder.name}" for c in chars],  # images: (n_characters, 20, H, W) uint8
            "alphabets": [c.alphabet for c in chars], "background": [c.part == "images_background" for c in chars],
            "version": CACHE_VERSION}


def _cache_problem(data, chars: list[_Character], image_size: int) -> str | None:
    """Why a loaded cache does not match the folders it claims to hold (``None`` when it does)."""
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return f"it is not a version-{CACHE_VERSION} image cache"
    images = data.get("images")
    if not torch.is_tensor(images) or images.dtype != torch.uint8 or images.dim() != 4 \
            or tuple(images.shape[2:]) != (image_size, image_size):
        return "its images are not a uint8 (n, k, H, W) tensor of the right size"
    names = [f"{c.alphabet}/{c.folder.name}" for c in chars]
    if data.get("names") != names or len(data.get("alphabets", ())) != len(names) \
            or len(data.get("background", ())) != len(names) or images.shape[0] != len(names):
        return "it does not list the same characters as the image folders"
    return None


_WARNED: set[str] = set()


def _warn(message: str, once: str | None = None) -> None:
    """Print ``message`` on one line of stderr (only the first time per process for a given ``once`` key)."""
    if once is None or once not in _WARNED:
        if once is not None:
            _WARNED.add(once)
        print(f"warning: {message}", file=sys.stderr)


def cache_status(root: Path, image_size: int = IMAGE_SIZE) -> tuple[Path, str | None]:
    """The cache file for ``root``'s current content and what is wrong with it: ``None`` when it is
    usable, ``"missing"`` when it has not been built yet, else why it cannot be read (the next
    :func:`load_omniglot` rebuilds it)."""
    chars = _scan(root)
    path = _cache_file(root, image_size, chars)
    if not path.exists():
        return path, "missing"
    try:
        data = torch.load(path, weights_only=True)
    except Exception as err:  # a corrupt file raises anything from EOFError to RuntimeError
        return path, _first_line(err)
    return path, _cache_problem(data, chars, image_size)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


@dataclass
class Omniglot:
    """The three Omniglot splits.

    Attributes:
        train: meta-train :class:`ImageSplit` (background alphabets minus validation).
        val: meta-validation split (:data:`VAL_ALPHABETS`).
        test: meta-test split (evaluation alphabets).
        root: the directory the images were read from.
        protocol: ``"alphabet"`` or ``"vinyals"`` (see the module docstring).
    """

    train: ImageSplit
    val: ImageSplit
    test: ImageSplit
    root: Path
    protocol: str = "alphabet"

    def split(self, name: str) -> ImageSplit:
        """Return the split called ``train``, ``val`` or ``test``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"split={name!r} is not known; use 'train', 'val' or 'test'")
        return getattr(self, name)


def vinyals_characters(name: str) -> list[str]:
    """The base characters (``"Alphabet/characterNN"``, in the list's order) of the Vinyals split ``name``.

    Args:
        name: ``"train"``, ``"val"``, ``"trainval"`` or ``"test"``.

    Raises:
        ValueError: an unknown name, a list whose lines are not ``Alphabet/characterNN/rotDDD`` with
            all four rotations of each character, or a list whose characters are not the shipped ones in their order.
        FileNotFoundError: the list is missing.
    """
    if name not in ("train", "val", "trainval", "test"):
        raise ValueError(f"Vinyals split {name!r} is not known; use 'train', 'val', 'trainval' or 'test'")
    path = VINYALS_DIR / f"{name}.txt"
    restore = f"restore the file from the fslcourse package (git checkout -- fslcourse/data/vinyals/{name}.txt)"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"the Vinyals list {path} is missing; {restore}") from None
    rots: dict[str, list[str]] = {}
    for i, line in enumerate(text.splitlines(), 1):
        parts = line.strip().split("/")
        if len(parts) != 3 or not parts[2].startswith("rot"):
            raise ValueError(f"{path}:{i}: {line!r} is not 'Alphabet/characterNN/rotDDD'; restore the file "
                             "from the fslcourse package")
        rots.setdefault(f"{parts[0]}/{parts[1]}", []).append(parts[2])
    bad = [c for c, r in rots.items() if sorted(r) != ["rot000", "rot090", "rot180", "rot270"]]
    if bad:
        raise ValueError(f"{path}: character {bad[0]} does not list each of rot000, rot090, rot180 and rot270 once "
                         f"({len(bad)} such character(s)); restore the file from the fslcourse package")
    if hashlib.sha256("\n".join(rots).encode()).hexdigest()[:16] != VINYALS_SHA256[name]:
        raise ValueError(f"{path} is not the papers' {name} list: its {len(rots)} characters are not the ones "
                         f"shipped, in their order (an edited copy?); {restore}")
    return list(rots)


def load_omniglot(image_size: int = IMAGE_SIZE, rotations: bool = True, download: bool = True,
                  progress: bool = True, device=None, split: str = "alphabet") -> Omniglot:
    """Load Omniglot's meta-train / meta-validation / meta-test splits.

    Args:
        split: the protocol: ``"alphabet"`` (background alphabets for meta-train, evaluation
            alphabets for meta-test; the course's default) or ``"vinyals"`` (the papers' character split).
        image_size: height and width of every image (28 as in the papers, and what the course's methods read).
        rotations: count 90°, 180° and 270° rotations as new classes.
        download: fetch and verify the official zips when no copy is found.
        progress: show progress bars for downloading and preprocessing.
        device: where the image tensors live (episodes are built there).

    Returns:
        An :class:`Omniglot` with ``train``, ``val`` and ``test`` splits.

    Raises:
        FileNotFoundError: no copy was found and ``download`` is False.
        ValueError: an unknown ``split``; a character of the Vinyals lists missing from the folders;
            a part holds no characters, a character folder has no drawings or a different
            number than the others, or a drawing is not a readable image; the message names it.

    The preprocessed cache is keyed by every drawing's path, size and modification time; a corrupt
    cache is rebuilt (one warning line), and a cache that cannot be written is skipped (one warning).
    """
    if split not in PROTOCOLS:
        hint = f"; for its meta-{split} classes take .{split} of the result" if split in ("train", "val", "test") else ""
        raise ValueError(f"split={split!r} is not a known protocol; use 'alphabet' (the course's) or 'vinyals' (the "
                         f"papers'){hint}")
    if device is not None:
        device = get_device(device)  # checked before the images are read: one line for 'gpu' or a missing driver
    lists = {name: vinyals_characters(name) for name in ("train", "val", "test")} if split == "vinyals" else {}
    root = find_omniglot()
    if root is None:
        if not download:
            looked = ", ".join(str(r) for r in data_roots())
            raise FileNotFoundError(
                f"Omniglot was not found (looked in {looked}); set FSLCOURSE_DATA to a folder holding "
                "omniglot/images_background and omniglot/images_evaluation, or pass download=True"
            )
        if os.environ.get("FSLCOURSE_DATA"):  # the user said where the data is: never download elsewhere instead
            raise FileNotFoundError(
                f"FSLCOURSE_DATA={os.environ['FSLCOURSE_DATA']} holds no omniglot/images_background and "
                "omniglot/images_evaluation; fix the path, fetch it there with `python -m fslcourse download`, or "
                "unset FSLCOURSE_DATA to use the cache")
        root = download_omniglot(data_roots()[-1], progress=progress)
    image_size = _positive("image_size", image_size)
    chars = _scan(root)
    cache = _cache_file(root, image_size, chars)
    data = None
    try:
        cached = cache.is_file()
    except OSError:  # an unreadable cache folder: build in memory (writing it will warn)
        cached = False
    if cached:
        try:
            data = torch.load(cache, weights_only=True)
            problem = _cache_problem(data, chars, image_size)
        except Exception as err:  # a corrupt file raises anything from EOFError to RuntimeError
            problem = f"it cannot be read ({_first_line(err)})"
        if problem:
            _warn(f"the image cache {cache} is unusable ({problem}); rebuilding it")
            data = None
    if data is None:
        data = _read_folders(root, image_size, progress, chars)
        try:
            atomic_torch_save(data, cache)
        except OSError as err:
            _warn(f"could not write the image cache ({err}); using the images in memory, so the next load "
                  f"preprocesses them again (set FSLCOURSE_CACHE to a writable folder)", once=str(cache.parent))
    rots = (0, 1, 2, 3) if rotations else (0,)
    images = data["images"]
    if device is not None:
        images = images.to(device)

    if split == "vinyals":
        index = {n: i for i, n in enumerate(data["names"])}
        groups = {}
        for name, chars in lists.items():  # read and checked before the images
            missing = [c for c in chars if c not in index]
            if missing:
                raise ValueError(f"the Vinyals {name} list names {missing[0]}, which is not under {root} "
                                 f"({len(missing)} missing character(s)); use a complete copy of Omniglot")
            groups[name] = [index[c] for c in chars]
    else:
        bg, alphas = data["background"], data["alphabets"]
        groups = {"train": [i for i, (b, a) in enumerate(zip(bg, alphas)) if b and a not in VAL_ALPHABETS],
                  "val": [i for i, (b, a) in enumerate(zip(bg, alphas)) if b and a in VAL_ALPHABETS],
                  "test": [i for i, b in enumerate(bg) if not b]}
    splits = {name: ImageSplit(name, images[idx], [data["names"][i] for i in idx], [data["alphabets"][i] for i in idx],
                               rots, protocol=split) for name, idx in groups.items()}
    return Omniglot(**splits, root=root, protocol=split)
