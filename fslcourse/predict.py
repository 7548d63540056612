"""Classify your own images with a course model: a folder of labelled examples in, predictions out.

``python -m fslcourse predict --support DIR --query DIR_OR_FILES [--method NAME] --out DIR`` and
:func:`predict_folders` from Python. The support folder holds one sub-folder per class (its name is
the class name) with any number of PNG or JPEG images; each query image gets the predicted class,
its probability and the top three. Images go through the course's own preprocessing
(:func:`fslcourse.data.load_image`: greyscale, 28×28, ink = 1), so draw dark strokes on a light
background, as in Omniglot.
"""
from __future__ import annotations

import csv
import io
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from PIL import Image

from .data import load_image
from .io import atomic_write_bytes, atomic_write_json, check_writable

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_PIXELS = 4096 * 4096  # larger images are refused: they are not drawings, and they cost memory
MAX_EDGE_INK = 0.5  # of the 28×28 outer ring; Omniglot's drawings reach at most ~15% of it
SHEET_QUERIES = 48  # the contact sheet shows this many queries at most; the CSV and JSON have them all
DEFAULT_METHOD = "protonet"  # with its lake recipe (pretrained.BEST_RECIPES): the course's best one-shot classifier


@dataclass
class Prediction:
    """One query image's prediction: the class, its probability, and the top three ``[class, probability]``."""

    file: str
    predicted: str
    probability: float
    top: list
    measure: str = "probability"  # or "relation score": a score in [0, 1], not a probability

    def confidence(self, value: float) -> str:
        """``97.0%`` for a probability, ``relation score 0.97`` for a score (never shown as a percentage)."""
        from .methods.base import format_confidence

        return format_confidence(value, self.measure)


def load_picture(path: str | Path) -> torch.Tensor:
    """One PNG or JPEG as a model input ``(1, 28, 28)`` (ink = 1); one-line errors for anything else.

    Light grey paper (its median reads as at most 20% ink) is made white: the median level maps to 0, full ink stays 1.

    Raises:
        ValueError: not a PNG/JPEG name, unreadable, larger than :data:`MAX_PIXELS`, blank, or mostly ink (light
            strokes on a dark background, which the models would read as a black blot), or dark at its edges (a table
            around a photographed page); names the file.
    """
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{path} is not an image (expected {', '.join(IMAGE_SUFFIXES)}); move it out of the folder")
    try:
        with warnings.catch_warnings():  # a huge image: our one line below says so, not Pillow's two-line warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except Image.DecompressionBombError:
        raise ValueError(f"{path} is larger than {MAX_PIXELS:,} pixels; shrink it (it becomes 28×28)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{path} is not a readable image ({type(err).__name__}); replace or remove it") from None
    if width * height > MAX_PIXELS:
        raise ValueError(f"{path} is {width}×{height} pixels, more than {MAX_PIXELS:,}; shrink it (it becomes 28×28)")
    try:
        x = load_image(path)  # (1, 28, 28), ink = 1
    except ValueError:  # a damaged file: the loader's advice is about Omniglot's own images, not the user's
        raise ValueError(f"{path} is not a readable image (damaged or truncated); replace or remove it") from None
    ink = float((x > 0.5).float().mean())
    if ink == 0:
        raise ValueError(f"{path} holds no ink at 28×28 pixels (a blank image, or strokes too thin or light to "
                         "survive the shrink): draw dark, thick strokes on a light background, or crop closer")
    if ink > 0.5:
        raise ValueError(f"{path} is mostly ink ({ink:.0%} of its pixels): the course reads dark strokes on a light "
                         "background; invert the image")
    paper = float(x.median())  # most pixels are paper: on white paper their ink level is about 0
    if paper > 0.2:
        raise ValueError(f"{path} has grey paper (it reads as {paper:.0%} ink where nothing is drawn): raise the "
                         "contrast or crop to the drawing, so that the paper is white")
    if paper > 0:  # light grey paper (a photo, a scan): made white, as every training drawing's paper is; ink stays 1
        x = ((x - paper) / (1 - paper)).clamp_(0, 1)
    edge = float((torch.cat([x[0, 0], x[0, -1], x[0, 1:-1, 0], x[0, 1:-1, -1]]) > 0.5).float().mean())
    if edge > MAX_EDGE_INK:  # a table or shadow around the page: the models would read a thick ink frame
        raise ValueError(f"{path} has a dark edge ({edge:.0%} of its outermost pixels read as ink): crop to the paper "
                         "(a photo's table or shadow around the page), or invert it if it is light ink on dark")
    return x


def _images_in(folder: Path) -> list[Path]:
    """The visible files of ``folder``, sorted; every one must be an image."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def read_support(folder: str | Path) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """The support set of a folder with one sub-folder per class.

    Returns:
        ``(support_x (n, 1, 28, 28), support_y (n,), class names, files)``; classes in sorted folder order.

    Raises:
        ValueError: the folder is missing, holds images outside class folders, fewer than two classes,
            an empty class folder, or a file that is not a readable image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--support {folder} is not a folder; give a folder with one sub-folder of images per class")
    loose = [p.name for p in _images_in(folder)]
    if loose:
        raise ValueError(f"--support {folder} holds files outside class folders ({loose[0]}); put every image in "
                         "the sub-folder named after its class")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise ValueError(f"--support {folder} has {len(classes)} class folder(s); a classifier needs at least two")
    xs, ys, files = [], [], []
    for label, cls in enumerate(classes):
        inner = sorted(d.name for d in cls.iterdir() if d.is_dir() and not d.name.startswith("."))
        if inner:  # their images would be left out of the class without a word (as --query refuses too)
            raise ValueError(f"class folder {cls} holds sub-folders ({', '.join(inner)}) whose images would be "
                             "skipped; move their images up into the class folder")
        images = _images_in(cls)
        if not images:
            raise ValueError(f"class folder {cls} has no images; add at least one PNG or JPEG, or remove the folder")
        for path in images:
            xs.append(load_picture(path))
            ys.append(label)
            files.append(str(path))
    return torch.stack(xs), torch.tensor(ys), [c.name for c in classes], files  # (n, 1, 28, 28), (n,)


def read_query(paths) -> tuple[torch.Tensor, list[str]]:
    """Query images from files and folders (a folder's images, sorted): ``(query_x (m, 1, 28, 28), files)``."""
    files = []
    for p in map(Path, [paths] if isinstance(paths, (str, Path)) else paths):
        if p.is_dir():
            inner = sorted(d.name for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
            if inner:  # their images would be left out without a word
                raise ValueError(f"--query {p} holds sub-folders ({', '.join(inner)}) whose images would be skipped; "
                                 "give those folders too, or move their images up")
            files += _images_in(p)
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"--query {p} does not exist; give image files or a folder of images")
    if not files:
        raise ValueError("--query names no image; give image files or a folder that holds some")
    unique = {}
    for f in files:  # a file named twice (alone and in its folder) is read once, where it first came
        unique.setdefault(f.resolve(), f)
    files = list(unique.values())
    return torch.stack([load_picture(f) for f in files]), [str(f) for f in files]  # (n_pictures, 1, 28, 28)


def classify(model, support_x, support_y, query_x, class_names: list[str], files: list[str]) -> list[Prediction]:
    """Predictions of ``model`` for every query image (softmax of its logits; a score model's scores as they are)."""
    from .methods.base import class_confidences, confidence_name, fixed_n_way

    n_way = len(class_names)
    fixed = fixed_n_way(model)
    if fixed is not None and fixed != n_way:
        raise ValueError(f"{type(model).__name__} has a fixed {fixed}-way head but the support folder has "
                         f"{n_way} classes; use {fixed} classes or a method without a fixed head (protonet)")
    model.eval()
    with torch.set_grad_enabled(getattr(model, "needs_grad_at_test", False)):
        logits = model.predict(support_x, support_y, query_x)  # (m, n_way)
    probs = class_confidences(model, logits.detach().cpu().double())  # (m, n_way); on the CPU: MPS has no float64
    top_p, top_i = probs.topk(min(3, n_way), dim=1)
    return [Prediction(f, class_names[int(i[0])], round(float(p[0]), 4),
                       [[class_names[int(k)], round(float(q), 4)] for q, k in zip(p, i)], confidence_name(model))
            for f, p, i in zip(files, top_p, top_i)]


def _wrapped(name: str, width: int = 15) -> str:
    """A class name in lines of at most ``width`` characters, broken after ``_``, ``-`` or a space where it can be: a
    column of the sheet is 1.3 inches wide, and Omniglot's names (``Angelic_character03``) ran into their neighbours'."""
    import re

    lines = [""]
    for part in re.split(r"(?<=[_\s-])", name):  # "Angelic_", "character03"
        while part:
            if lines[-1] and len(lines[-1]) + len(part) > width:
                lines.append("")
            room = width - len(lines[-1])
            lines[-1], part = lines[-1] + part[:room], part[room:]
    return "\n".join(line.strip() for line in lines)


def sheet_figure(preds: list[Prediction], query_x: torch.Tensor, support_x, support_y, class_names):
    """A matplotlib Figure: one support example per class on top, then the first :data:`SHEET_QUERIES` queries,
    each titled with its prediction and confidence (a relation score as a score, never a percentage)."""
    from matplotlib.figure import Figure

    shown = preds[:SHEET_QUERIES]  # a thousand queries would make a picture nobody can read, or none at all
    cols = max(len(class_names), min(len(shown), 8))
    rows = 1 + -(-len(shown) // cols)
    fig = Figure(figsize=(1.3 * cols, 1.6 * rows + 0.4), dpi=100)
    for k, name in enumerate(class_names):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(support_x[support_y == k][0, 0].cpu().numpy(), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"class\n{_wrapped(name)}", fontsize=8, parse_math=False)  # a folder name is text, "$x$" too
        ax.axis("off")
    for j, (pred, x) in enumerate(zip(shown, query_x)):
        ax = fig.add_subplot(rows, cols, cols + j + 1)
        ax.imshow(x[0].cpu().numpy(), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"{_wrapped(pred.predicted)}\n{pred.confidence(pred.probability)}", fontsize=7, parse_math=False)
        ax.axis("off")
    if len(preds) > len(shown):
        fig.suptitle(f"the first {len(shown)} of {len(preds)} queries; predictions.csv has them all", fontsize=9)
    fig.tight_layout()
    return fig


def contact_sheet(preds: list[Prediction], query_x: torch.Tensor, support_x, support_y, class_names) -> bytes:
    """:func:`sheet_figure` as PNG bytes."""
    buf = io.BytesIO()
    sheet_figure(preds, query_x, support_x, support_y, class_names).savefig(buf, format="png")
    return buf.getvalue()


def predict_folders(support, query, method: str = DEFAULT_METHOD, out: str | Path | None = None,
                    profile: str | None = None, device=None, transductive: bool = False,
                    overwrite: bool = False) -> list[Prediction]:
    """Classify ``query`` images with ``method`` given the labelled ``support`` folder; write outputs to ``out``.

    Args:
        support: a folder with one sub-folder of images per class.
        query: an image file, a folder of images, or a list of them.
        method: a registered method with a committed checkpoint (default :data:`DEFAULT_METHOD`).
        profile: the recipe whose checkpoint to load; ``None``: the method's best
            (:func:`fslcourse.pretrained.default_recipe`: ``lake`` for ProtoNet, else ``quick``).
        out: a folder for ``predictions.csv``, ``predictions.json`` and ``contact_sheet.png`` (checked
            before any work; files an earlier run left there are replaced only with ``overwrite``); ``None``
            writes nothing.
        transductive: classify all the queries together: batch normalisation from their own statistics and
            soft k-means prototypes (:mod:`fslcourse.methods.transductive`, the course's best on Lake et al.'s
            task). It assumes every query shows one of the support classes; with several queries per class it
            helps most. Needs a Euclidean prototype method (protonet).

    Returns:
        One :class:`Prediction` per query image, in the order read.
    """
    from . import methods  # noqa: F401  (registers every method)
    from .config import get_device
    from .methods.base import confidence_name, get_method
    from .pretrained import default_recipe, existing_checkpoint, pretrained

    cls = get_method(method)  # an unknown name fails before any image is read
    if profile not in (None, "quick") and not cls.trainable:  # as evaluate: no recipe to name
        raise ValueError(f"{method} has no trained weights, so --profile {profile} does not apply; leave it out")
    profile = default_recipe(method) if profile is None else profile
    targets = None
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file; give a folder for the predictions")
        inputs = [Path(support)] + [Path(q) for q in ([query] if isinstance(query, (str, Path)) else query)]
        for folder in (f for f in inputs if f.is_dir()):  # its CSV and PNG would be read as images next time
            if out.resolve() == folder.resolve() or folder.resolve() in out.resolve().parents:
                raise ValueError(f"--out {out} is inside the input folder {folder}; the next run would read the "
                                 "predictions as images: choose a folder outside it")
        targets = [check_writable(out / name, "--out") for name in ("predictions.csv", "predictions.json",
                                                                      "contact_sheet.png")]
        there = [t.name for t in targets if t.exists()]
        if there and not overwrite:
            raise ValueError(f"--out {out} already holds {', '.join(there)}; pass --overwrite to replace them, "
                             "or choose another folder")
    device = get_device(device)  # a bad device, like a missing checkpoint, fails before the images are read
    if cls.trainable:
        existing_checkpoint(method, profile)
    support_x, support_y, class_names, _ = read_support(support)
    query_x, files = read_query(query)
    model = pretrained(method, profile=profile, device=device)
    if transductive:
        from .methods.transductive import REFINE_STEPS, BatchStatistics, SoftKMeans

        if not callable(getattr(model, "embed", None)) or getattr(model, "distance", None) != "euclidean":
            raise ValueError(f"--transductive refines Euclidean prototypes, which {method!r} has not; "
                             "use --method protonet or leave out --transductive")
        model = SoftKMeans(BatchStatistics(model), steps=REFINE_STEPS)
    preds = classify(model, support_x.to(device), support_y.to(device), query_x.to(device), class_names, files)
    if targets is not None:
        png = contact_sheet(preds, query_x, support_x, support_y, class_names)  # first: a failure writes nothing
        table = io.StringIO(newline="")
        w = csv.writer(table)
        w.writerow(["file", "predicted", confidence_name(model), "top3"])  # "probability", or a relation score
        for p in preds:
            w.writerow([p.file, p.predicted, p.probability, "; ".join(f"{c} {q:.4f}" for c, q in p.top)])
        atomic_write_bytes(table.getvalue().encode("utf-8"), targets[0])
        atomic_write_json({"method": method, "profile": profile, "transductive": bool(transductive),
                           "measure": confidence_name(model),
                           "classes": class_names,
                           "predictions": [asdict(p) for p in preds]}, targets[1])
        atomic_write_bytes(png, targets[2])
    return preds
