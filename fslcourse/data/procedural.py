"""A procedural task family that needs no files: glyphs made of random strokes.

Taught in ``notebooks/01_episodes.ipynb`` ("a distribution over tasks").

A *class* is a random set of 1-4 strokes (quadratic Bézier curves); an
*instance* of the class is the same strokes with jittered control points, a
small random shift, scale and rotation, and a random pen width. Classes of one
*alphabet* share a stroke style (how many strokes and how curved they are), so
the within-alphabet protocol works here too. Splits made with different seeds
hold different random classes, so they never share a class. The fast unit tests
use this family instead of Omniglot.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from .episodes import _positive
from .splits import ImageSplit

_RENDER = 56  # draw at twice the size, then downsample with an antialiasing filter


def _bezier(points: np.ndarray, n: int = 24) -> np.ndarray:
    """Points along a quadratic Bézier curve; ``points`` is ``(3, 2)``, returns ``(n, 2)``."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * points[0] + 2 * (1 - t) * t * points[1] + t**2 * points[2]


def _render(strokes: list[np.ndarray], width: float, image_size: int) -> np.ndarray:
    """Render strokes given in ``[0, 1]`` coordinates to a ``(image_size, image_size)`` uint8 image, ink = 255."""
    canvas = Image.new("L", (_RENDER, _RENDER), 0)
    draw = ImageDraw.Draw(canvas)
    for stroke in strokes:
        xy = [tuple(p) for p in (_bezier(stroke) * (_RENDER - 1))]
        draw.line(xy, fill=255, width=max(1, int(round(width))), joint="curve")
    return np.asarray(canvas.resize((image_size, image_size), Image.LANCZOS), dtype=np.uint8)


def _class_strokes(rng: np.random.Generator, n_strokes: int, curvature: float) -> list[np.ndarray]:
    strokes = []
    for _ in range(n_strokes):
        ends = rng.uniform(0.15, 0.85, size=(2, 2))
        mid = ends.mean(axis=0) + rng.normal(0.0, curvature, size=2)
        strokes.append(np.stack([ends[0], np.clip(mid, 0.05, 0.95), ends[1]]))  # (3, 2): start, bend and end points
    return strokes


def _instance(rng: np.random.Generator, strokes: list[np.ndarray], jitter: float) -> list[np.ndarray]:
    angle = rng.normal(0.0, 0.12)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    scale = rng.uniform(0.85, 1.1)
    shift = rng.normal(0.0, 0.04, size=2)
    out = []
    for s in strokes:
        p = s + rng.normal(0.0, jitter, size=s.shape)
        out.append(np.clip((p - 0.5) @ rot.T * scale + 0.5 + shift, 0.02, 0.98))
    return out


def make_glyph_split(n_classes: int = 60, n_examples: int = 20, image_size: int = 28, seed: int = 0,
                     n_alphabets: int = 4, jitter: float = 0.03, name: str = "glyphs") -> ImageSplit:
    """Make a split of random-stroke glyph classes.

    Args:
        n_classes: how many classes (each a random stroke set).
        n_examples: instances per class.
        image_size: height and width of every image.
        seed: all randomness comes from ``numpy.random.default_rng(seed)``.
        n_alphabets: classes are dealt round-robin into this many stroke styles.
        jitter: standard deviation of the control-point noise between instances.
        name: the split's name.

    Returns:
        An :class:`ImageSplit` with ``images`` of shape ``(n_classes, n_examples, image_size, image_size)``
        and no rotations.
    """
    n_classes, n_examples, n_alphabets, image_size = (
        _positive(arg, value) for arg, value in (("n_classes", n_classes), ("n_examples", n_examples),
                                                 ("n_alphabets", n_alphabets), ("image_size", image_size)))
    rng = np.random.default_rng(seed)
    styles = [(1 + a % 4, 0.05 + 0.1 * (a % 3)) for a in range(n_alphabets)]  # (strokes, curvature)
    images = np.empty((n_classes, n_examples, image_size, image_size), dtype=np.uint8)
    names, alphabets = [], []
    for c in range(n_classes):
        a = c % n_alphabets
        n_strokes, curvature = styles[a]
        strokes = _class_strokes(rng, n_strokes + int(rng.integers(0, 2)), curvature)
        for e in range(n_examples):
            images[c, e] = _render(_instance(rng, strokes, jitter), rng.uniform(2.5, 4.0), image_size)
        alphabets.append(f"style{a}")
        names.append(f"style{a}/glyph{c:03d}")
    return ImageSplit(name, torch.from_numpy(images), names, alphabets, rotations=(0,))


def glyph_splits(n_classes=(60, 20, 30), n_examples: int = 20, image_size: int = 28, seed: int = 0):
    """Meta-train, meta-validation and meta-test glyph splits drawn with different seeds.

    Returns:
        ``(train, val, test)`` :class:`ImageSplit` objects.
    """
    return tuple(
        make_glyph_split(n, n_examples, image_size, seed=seed * 1000 + i, name=name)
        for i, (n, name) in enumerate(zip(n_classes, ("train", "val", "test")))
    )
