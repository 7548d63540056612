"""Small plotting helpers shared by the widgets and notebooks."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import to_rgb
from matplotlib.ticker import NullFormatter

# Right and wrong: a green and a red that no class colour comes near (tests/widgets/test_plotting.py), a light one and
# a dark one, so that they differ in lightness too (a reader without red-green vision tells them apart by that; the
# earlier #1a9641 / #d7191c were nearly one brown for them); a wrong query's frame is also dashed (tile).
RIGHT, WRONG = to_rgb("#2dc26b"), to_rgb("#8b0000")
# Twenty class colours whose neighbours differ in hue (unlike tab20's dark/light pairs of one hue), none of them a
# green or a red, so a class is never mistaken for "right" or "wrong"; the first eight are the strongest. Classes 2,
# 3 and 5 are dark, so that the five of a 5-way episode stay apart without red-green vision too (tab10's purple,
# olive and cyan looked like classes 0, 1 and 4 to such a reader; tests/widgets/test_plotting.py simulates it).
CLASS_COLOURS = tuple(to_rgb(c) for c in (
    "#1f77b4", "#ff7f0e", "#3f007d", "#6b5a00", "#e377c2", "#005f73", "#8c564b", "#7f7f7f",
    "#393b79", "#e6ab02", "#7b4173", "#6baed6", "#fdae6b", "#b5cf6b", "#9e9ac8", "#de9ed6",
    "#636363", "#8c6d31", "#6b6ecf", "#ce6dbd"))


# The smallest text a widget's picture may hold, in pixels at the picture's own size: about what a 1280×800
# projector shows legibly at the back of a room (tests/widgets/test_readability.py measures every widget).
MIN_TEXT_PX = 11


def text_points(where, px: float = MIN_TEXT_PX) -> float:
    """The font size in points that is ``px`` pixels tall on ``where``, a figure or axes (a point is 1/72 inch)."""
    return px * 72.0 / where.figure.dpi


def drawn_text(fig) -> list:
    """The visible, non-empty texts of ``fig`` that a draw shows (tick labels outside their axis's view are not)."""
    from matplotlib.text import Text

    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            eps = 1e-9 * max(1.0, abs(hi - lo))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if tick.get_loc() is None or not lo - eps <= tick.get_loc() <= hi + eps:
                    hidden.update((id(tick.label1), id(tick.label2)))
    return [t for t in fig.findobj(Text) if id(t) not in hidden and t.get_visible() and t.get_text().strip()
            and (t.axes is None or t.axes.get_visible())]


def small_text(fig, min_px: float = MIN_TEXT_PX) -> list[tuple[str, float]]:
    """Every text ``fig`` shows that is smaller than ``min_px`` pixels, as ``(text, pixels)`` pairs."""
    sizes = [(t.get_text(), t.get_fontsize() * fig.dpi / 72.0) for t in drawn_text(fig)]
    return [(text, px) for text, px in sizes if px < min_px - 1e-6]


def crowded_text(fig) -> list[str]:
    """Texts ``fig`` shows that are cut off by its edge or overlap another text, one line each."""
    fig.canvas.draw()  # legends, labels and ticks find their places only when drawn
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in drawn_text(fig)]
    width, height = fig.bbox.width, fig.bbox.height
    found = [f"{text!r} is cut off by the figure's edge" for text, b in boxes
             if b.x0 < -1 or b.y0 < -1 or b.x1 > width + 1 or b.y1 > height + 1]
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            overlap_x = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            overlap_y = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            if overlap_x > 1 and overlap_y > 1:
                found.append(f"{a!r} overlaps {b!r}")
    return found


def log_axis(ax, ticks, axis: str = "x") -> None:
    """Put ``axis`` of ``ax`` on a log scale labelled only at ``ticks``, written plainly (``300``, not ``3×10²``)."""
    getattr(ax, f"set_{axis}scale")("log")
    getattr(ax, f"set_{axis}ticks")(ticks, [f"{t:,g}" for t in ticks])
    getattr(ax, f"{axis}axis").set_minor_formatter(NullFormatter())


# One colour per generator in every figure of notebooks 07-10: a family shares a hue (the VAEs blue, the GANs orange,
# diffusion purple, the feature-space generators brown and cyan, the untrained controls grey), none of them the
# green or red of right and wrong.
GENERATOR_COLOURS = {
    "vae": "#1f77b4", "vae-prior": "#6baed6", "deformation-vae": "#08306b", "vae-feature": "#17becf",
    "gan": "#ff7f0e", "deformation-gan": "#fdae6b", "hallucinator": "#8c564b", "diffusion": "#9467bd",
    "deformation": "#4d4d4d", "copy-noise": "#a6a6a6"}


def generator_colour(name: str):
    """The colour of generator ``name`` (:data:`GENERATOR_COLOURS`), also for a described variant such as
    ``"diffusion DDIM 50, w=6"`` or ``"copy + noise (untrained control)"`` (the longest name it starts with).

    Raises:
        ValueError: ``name`` starts with no generator's name (the message lists them).
    """
    plain = name.lower().replace(" + ", "-")
    known = [k for k in GENERATOR_COLOURS if plain == k or plain.startswith((k + " ", k + ","))]
    if not known:
        raise ValueError(f"{name!r} is not a generator of GENERATOR_COLOURS; add it there or use one of "
                         f"{', '.join(GENERATOR_COLOURS)}")
    return GENERATOR_COLOURS[max(known, key=len)]


def generator_markers(names) -> dict[str, str]:
    """A marker per generator row, the same rule in every figure: a square for an untrained control (its name says
    "control"), else a circle, then a diamond, a triangle... for the next rows of one colour (two diffusion settings).
    """
    markers, uses = {}, {}
    for name in names:
        colour = str(generator_colour(name))
        # diffusion's purple and the VAE's blue look alike without red-green vision: diffusion starts at the diamond
        first = 1 if colour == GENERATOR_COLOURS["diffusion"] else 0
        markers[name] = "s" if "control" in name else "oD^v<>"[(first + uses.get(colour, 0)) % 6]
        uses[colour] = uses.get(colour, 0) + 1
    return markers


# One colour per method in every figure that draws methods one by one (notebooks 03-06 and 11, and
# report.curves_figure): the eight of the learning curves (report.CURVE_METHODS) far apart, the MAML family in warm
# colours, MTL's variants in navies and violets; none of them the green or red of right and wrong.
METHOD_COLOURS = {
    "protonet": "#1f77b4", "cosine-prototypes": "#6baed6", "matching": "#22d3e6", "relation": "#9467bd",
    "gnn": "#e6ab02", "finetune": "#8c564b", "maml": "#ff7f0e", "fomaml": "#bcbd22", "reptile": "#e377c2",
    "mtl": "#393b79", "mtl-no-ht": "#6b6ecf", "mtl-ft": "#9e9ac8", "mtl-theta-only": "#636363",
    "hallucinating-protonet": "#8c6d31", "parameter-prediction": "#de9ed6", "metagan": "#fdae6b", "pixel": "#a6a6a6"}


# One marker per method beside its colour, so that lines and points are told apart without colour vision too (the
# eight of the learning curves each their own; variants share their method's).
METHOD_MARKERS = {
    "protonet": "o", "cosine-prototypes": "o", "matching": "s", "relation": "^", "gnn": "h", "finetune": "D",
    "maml": "v", "fomaml": "P", "reptile": "X", "mtl": "*", "mtl-no-ht": "*", "mtl-ft": "*", "mtl-theta-only": "*",
    "hallucinating-protonet": "p", "parameter-prediction": "d", "metagan": "<", "pixel": ">"}


def method_style(name: str) -> dict:
    """``{"color": ..., "marker": ...}`` of method ``name``, for ``ax.plot(..., **method_style(name))``.

    Raises:
        ValueError: ``name`` is not a method of :data:`METHOD_COLOURS` (the message lists them).
    """
    return {"color": method_colour(name), "marker": METHOD_MARKERS[name]}


def method_colour(name: str):
    """The colour of method ``name`` (:data:`METHOD_COLOURS`), the same in every figure of the course.

    Raises:
        ValueError: ``name`` is not a method of :data:`METHOD_COLOURS` (the message lists them).
    """
    if name not in METHOD_COLOURS:
        raise ValueError(f"{name!r} is not a method of METHOD_COLOURS; add it there or use one of "
                         f"{', '.join(METHOD_COLOURS)}")
    return METHOD_COLOURS[name]


def class_colour(label: int):
    """A stable colour for class label ``label`` (RGB in ``[0, 1]``)."""
    return CLASS_COLOURS[int(label) % len(CLASS_COLOURS)]


def show_image(ax, image: torch.Tensor, title: str | None = None, colour=None) -> None:
    """Draw one ``(1, H, W)`` image (ink = 1) as dark ink on white paper, with an optional coloured frame.

    On axes that already show an image of the same size, only its pixels (and the title and frame) change:
    widgets that keep their axes between redraws call this again at little cost.
    """
    pixels = 1.0 - image.detach().cpu().squeeze(0).numpy()  # (H, W), paper = 1
    if ax.images and ax.images[0].get_array().shape == pixels.shape:
        ax.images[0].set_data(pixels)
    else:
        for old in list(ax.images):  # another size: a new image replaces the old one
            old.remove()
        ax.imshow(pixels, cmap="gray", vmin=0.0, vmax=1.0)
        ax.set(xticks=[], yticks=[])
    if title or ax.get_title():
        ax.set_title(title or "", fontsize=text_points(ax))
    ax.spines[:].set_visible(colour is not None)
    if colour is not None:
        ax.spines[:].set_edgecolor(colour)
        ax.spines[:].set_linewidth(2.5)


def image_grid(images: torch.Tensor, n_rows: int, n_cols: int, titles=None, colours=None,
               figsize=None, suptitle: str | None = None):
    """A figure with ``images`` ``(n_rows * n_cols, 1, H, W)`` laid out row by row."""
    figsize = figsize or (1.1 * n_cols, 1.2 * n_rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=figsize, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < len(images):
            show_image(ax, images[i], titles[i] if titles else None, colours[i] if colours else None)
        else:
            ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def tile(images: np.ndarray, frames: np.ndarray, bars: np.ndarray | None, n_rows: int, n_cols: int,
          pad: int = 3, swatches: np.ndarray | None = None, dashed: np.ndarray | None = None) -> np.ndarray:
    """Compose ``(n, H, W)`` ink images into one RGB array with coloured frames and probability bars.

    Args:
        images: ``(n_rows * n_cols, H, W)`` in ``[0, 1]``, ink = 1.
        frames: ``(n, 3)`` RGB frame colours.
        bars: ``(n, 2)`` ``(probability, correct)`` per image, or ``None``.
        swatches: ``(n, 3)`` RGB of a 6×6 square in each image's top-right corner (the predicted
            class's colour, as in the support frames), or ``None``.
        dashed: ``(n,)`` bools: the images whose frame is dashed (wrong predictions: seen without colour too), or
            ``None``.

    Returns:
        ``(rows_px, cols_px, 3)`` float RGB array.
    """
    n, h, w = images.shape
    bar_h = 5 if bars is not None else 0
    cell_h, cell_w = h + 2 * pad + bar_h, w + 2 * pad
    canvas = np.ones((n_rows * cell_h, n_cols * cell_w, 3))
    for i in range(n):
        r, c = divmod(i, n_cols)
        y, x = r * cell_h, c * cell_w
        canvas[y + 1:y + h + 2 * pad - 1, x + 1:x + w + 2 * pad - 1] = frames[i]  # frame
        if dashed is not None and dashed[i]:  # white gaps of 3 pixels every 6 along the frame
            fy, fx = np.mgrid[0:h + 2 * pad - 2, 0:w + 2 * pad - 2]
            gaps = ((fy + fx) // 3) % 2 == 1
            canvas[y + 1:y + h + 2 * pad - 1, x + 1:x + w + 2 * pad - 1][gaps] = 1.0
        canvas[y + pad:y + pad + h, x + pad:x + pad + w] = (1 - images[i])[..., None]  # dark ink on white
        if swatches is not None:
            canvas[y + pad:y + pad + 6, x + pad + w - 6:x + pad + w] = swatches[i]
        if bars is not None:
            p, ok = bars[i]
            by = y + h + 2 * pad
            canvas[by + 1:by + bar_h - 1, x + 1:x + w + 2 * pad - 1] = 0.85  # bar background
            canvas[by + 1:by + bar_h - 1, x + 1:x + 1 + int(round(p * (w + 2 * pad - 2)))] = RIGHT if ok else WRONG
    return canvas


def principal_axes(points: torch.Tensor, k: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PCA of ``(n, D)`` points: ``(coords (n, k), axes (k, D), std (k,))``, each axis's largest entry positive."""
    points = points.cpu()  # float64 below: MPS has none
    centred = (points - points.mean(0, keepdim=True)).double()  # on the CPU (above)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)  # vh: (min(n, D), D)
    axes = vh[:k]
    axes = axes * torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))  # deterministic signs
    std = s[:k] / max(1, len(points) - 1) ** 0.5
    return (centred @ axes.T).float(), axes.float(), std.float()


def draw_prototype_drag(ax, drag: dict, title: str | None = None) -> None:
    """Draw :func:`~fslcourse.generative.weighted_prototypes.prototype_drag`'s points on ``ax``.

    Queries are faint dots, real support examples large circles, generated ones small crosses (grey when
    nearer another class's real prototype), and an arrow runs from each real prototype (○) to its
    augmented one (●): the drag.
    """
    for k in range(len(drag["old"])):
        c = class_colour(k)
        q = drag["query"][drag["query_y"] == k]
        ax.scatter(q[:, 0], q[:, 1], s=10, color=c, alpha=0.25, linewidths=0)
        g = drag["generated_y"] == k
        for ok, colour in ((True, c), (False, "0.55")):
            pts = drag["generated"][g & (drag["recognised"] == ok)]
            ax.scatter(pts[:, 0], pts[:, 1], s=22, marker="x", color=colour, linewidths=1)
        s = drag["support"][drag["support_y"] == k]
        ax.scatter(s[:, 0], s[:, 1], s=90, color=c, edgecolors="black", linewidths=0.8, zorder=3)
        (x0, y0), (x1, y1) = drag["old"][k].tolist(), drag["new"][k].tolist()
        ax.scatter([x0], [y0], s=140, facecolors="white", edgecolors=c, linewidths=2, zorder=4)
        ax.scatter([x1], [y1], s=140, color=c, edgecolors="black", linewidths=0.8, zorder=4)
        ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "->", "color": c, "lw": 1.5}, zorder=5)
    ax.set(xticks=[], yticks=[])
    ax.set_xlabel("principal axis 1")
    ax.set_ylabel("principal axis 2")
    ax.set_title(title or f"queries right: {drag['accuracy_old']:.0f}% with real prototypes, "
                          f"{drag['accuracy_new']:.0f}% with augmented ones", fontsize=9)
