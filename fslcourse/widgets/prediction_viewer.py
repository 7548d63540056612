"""Support/query prediction viewer: what a method predicts for each query of an episode.

Taught in ``notebooks/02_protonet.ipynb``; reused by ``04_finetune_baseline`` and the MAML notebook.

The support set is shown one row per class, framed in the class's colour; then,
for each method, the query images with a green (correct) or dashed red (wrong) frame,
the predicted class as a square of that class's colour in the corner, and its
probability (a relation score for the Relation Network) as a bar under the image. Next/Prev step through the
episodes: episode ``i`` is the ``i``-th episode that
:func:`fslcourse.evaluate.evaluate` draws with the same seed and sizes. Several
methods (``{label: method}``) are shown side by side on the same episode, e.g.
before and after adaptation. Images are composed into one array per panel so
an update only replaces the pixels of a few images (no per-query text), and only they and the few
changing lines of text are drawn again over the kept static picture (see ``Explorer.dynamic_artists``).
"""
from __future__ import annotations

import textwrap

import numpy as np
import torch

from ..data.episodes import Episode, EpisodeSampler
from ..methods.base import check_model, class_confidences, confidence_name
from .base import Explorer
from .plotting import MIN_TEXT_PX, RIGHT, WRONG, class_colour, text_points, tile

GREEN, RED = np.array(RIGHT), np.array(WRONG)


def clause_lines(text: str, width: int) -> list[str]:
    """``text`` on lines of at most ``width`` characters, broken after a clause's ``"; "`` where one fits (a lone
    word such as "score)" left on a line of its own read as a broken key); a clause longer than a line is wrapped."""
    clauses = text.split("; ")
    lines: list[str] = []
    for clause in [c + ";" for c in clauses[:-1]] + clauses[-1:]:
        if lines and len(lines[-1]) + 1 + len(clause) <= width:
            lines[-1] += " " + clause
        else:
            lines.extend(textwrap.wrap(clause, width))
    return lines


class PredictionViewer(Explorer):
    """Step through episodes and see each query's prediction.

    Args:
        method: a :class:`~fslcourse.methods.base.FewShotClassifier`, or ``{label: method}`` to compare.
        split: the :class:`~fslcourse.data.splits.ImageSplit` to draw episodes from.
        n_way, n_shot, n_query: episode sizes.
        seed: the episode sampler's seed.

    Attributes:
        index: the episode number shown (``prev``/``next`` change it).
        label: the HTML line beside the buttons: the episode number and each method's accuracy.
        shown: what the last :meth:`render` drew: ``episode``, and per label ``pred``,
            ``prob`` (of the predicted class), ``correct`` and ``accuracy``.
    """

    persistent_axes = True  # the axes are laid out once; an update only replaces their pixels (fast)

    def __init__(self, method, split, n_way: int = 5, n_shot: int = 1, n_query: int = 3, seed: int = 0):
        self.methods = dict(method) if isinstance(method, dict) else {getattr(method, "name", "method"): method}
        if not self.methods:
            raise ValueError("methods is an empty dict; give at least one {label: method}")
        for label, m in self.methods.items():
            check_model(m, f"method[{label!r}]" if isinstance(method, dict) else "method")
        self.split, self.n_way, self.n_shot, self.n_query, self.seed = split, n_way, n_shot, n_query, seed
        self._sampler = EpisodeSampler(split, n_way, n_shot, n_query, seed=seed)
        self._episodes: list[Episode] = []
        self.index = 0
        self.prev = self.button(lambda: self.go(self.index - 1), description="Prev", icon="backward", disabled=True)
        self.next = self.button(lambda: self.go(self.index + 1), description="Next", icon="forward")
        self.controls = {"prev": self.prev, "next": self.next}
        self.label = self.status
        n_m = len(self.methods)
        super().__init__([[self.prev, self.next, self.label]],
                         figsize=(1.2 + (n_shot + n_m * n_query) * 0.75 + 0.5 * n_m, 0.9 + 0.8 * n_way))

    def episode(self, index: int) -> Episode:
        """Episode number ``index`` (drawn in order and cached, so Prev shows the same one again)."""
        if index < 0:
            raise ValueError(f"index={index} must be >= 0")
        while len(self._episodes) <= index:
            self._episodes.append(self._sampler.sample())
        return self._episodes[index]

    def go(self, index: int) -> None:
        """Show episode ``index`` (clamped at 0)."""
        self.index = max(0, int(index))
        self.prev.disabled = self.index == 0
        self.update()

    def compute(self) -> dict:
        """Predict the current episode with every method."""
        ep = self.episode(self.index)
        shown = {"episode": ep, "index": self.index}
        for label, m in self.methods.items():
            m.eval()
            device = next(m.parameters()).device if any(True for _ in m.parameters()) else ep.query_x.device
            with torch.set_grad_enabled(getattr(m, "needs_grad_at_test", False)):
                logits = m.predict(ep.support_x.to(device), ep.support_y.to(device), ep.query_x.to(device))
            probs = class_confidences(m, logits.detach().float().cpu())  # (n_query_total, n_way)
            prob, pred = probs.max(1)
            correct = pred == ep.query_y.cpu()
            shown[label] = {"pred": pred, "prob": prob, "probs": probs, "correct": correct,
                            "accuracy": 100 * correct.float().mean().item()}
        return shown

    def _layout(self, ep: Episode) -> None:
        """Create the axes, images and labels once; later renders only update their data (fast)."""
        fig = self.fig
        labels = list(self.methods)
        widths = [ep.n_shot] + [ep.n_query] * len(labels)
        axes = fig.subplots(1, 1 + len(labels), gridspec_kw={"width_ratios": widths}, squeeze=False)[0]
        h, w = ep.support_x.shape[-2:]
        blank = np.ones((ep.n_way * (h + 6), ep.n_shot * (w + 6), 3))
        self._support_im = axes[0].imshow(blank, interpolation="nearest")
        axes[0].set_title("support", fontsize=text_points(self.fig))
        axes[0].set_yticks([(h + 6) * (k + 0.5) for k in range(ep.n_way)], [f"class {k}" for k in range(ep.n_way)],
                           fontsize=text_points(self.fig))
        axes[0].set_xticks([])
        for ax in axes:  # the frames around each image say all; an axes' own edges drew half a box
            ax.spines[:].set_visible(False)
        cell_h, cell_w = h + 11, w + 6
        self._query_ims = {}
        for ax, label in zip(axes[1:], labels):
            self._query_ims[label] = ax.imshow(np.ones((ep.n_way * cell_h, ep.n_query * cell_w, 3)),
                                               interpolation="nearest")
            ax.set(xticks=[], yticks=[])
        self._axes = axes
        # each method's name wrapped to what fits above its panel (its share of the width, in characters), with
        # its accuracy on a line of its own under it (the only text that changes: see dynamic_artists)
        fs = text_points(fig)
        panel_px = fig.bbox.width * 0.89 / sum(widths) * ep.n_query
        names = {label: textwrap.wrap(label, max(8, int(panel_px / (0.6 * MIN_TEXT_PX)))) for label in labels}
        self._accuracy = {}
        for ax, label in zip(axes[1:], labels):
            ax.set_title("\n".join(names[label]), fontsize=fs, pad=6 + 1.4 * fs)
            self._accuracy[label] = ax.annotate("", (0.5, 1), xycoords="axes fraction", xytext=(0, 3),
                                                textcoords="offset points", ha="center", va="bottom", fontsize=fs)
        scored = [label for label, m in self.methods.items() if confidence_name(m) != "probability"]
        key = ("query frame: green right, dashed red wrong; corner: predicted class (support frame colour); "
               "bar: its probability" + (f" ({', '.join(scored)}: its relation score)" if scored else ""))
        key_lines = clause_lines(key, int(fig.bbox.width / (0.6 * MIN_TEXT_PX)))  # what fits on a line
        height = fig.bbox.height
        self._episode_text = fig.text(0.5, 1 - 4 / height, "", ha="center", va="top", fontsize=fs)
        fig.text(0.5, 1 - 19 / height, "\n".join(key_lines), ha="center", va="top", fontsize=fs, linespacing=1.1)
        # room above the panels for the title's lines and the panel titles, in pixels
        title_lines = 1 + max(len(lines) for lines in names.values())
        top = 1 - (14 * (1 + len(key_lines)) + 14 * title_lines + 10) / height
        fig.subplots_adjust(left=0.1, right=0.99, top=top, bottom=0.02, wspace=0.08)

    def draw(self, fig, shown: dict) -> None:
        """Fill the support and query panels with the current episode and its predictions."""
        ep: Episode = shown["episode"]
        if not hasattr(self, "_axes"):
            self._layout(ep)
        support = ep.support_x.cpu().squeeze(1).numpy()  # (n_way * n_shot, H, W)
        frames = np.array([class_colour(int(k)) for k in ep.support_y.cpu()])
        self._support_im.set_data(tile(support, frames, None, ep.n_way, ep.n_shot))
        query = ep.query_x.cpu().squeeze(1).numpy()  # (n_way * n_query, H, W)
        for label in self.methods:
            r = shown[label]
            ok = r["correct"].numpy()
            bars = np.stack([r["prob"].numpy(), ok], 1)  # (n_query_total, 2): probability, correct
            swatches = np.array([class_colour(int(k)) for k in r["pred"]])
            self._query_ims[label].set_data(tile(query, np.where(ok[:, None], GREEN, RED), bars, ep.n_way, ep.n_query,
                                                  swatches=swatches, dashed=~ok.astype(bool)))
            self._accuracy[label].set_text(f"{r['accuracy']:.1f}% correct")
        self._episode_text.set_text(f"episode {shown['index']}: {ep.n_way}-way {ep.n_shot}-shot")

    def dynamic_artists(self) -> list | None:
        """The pictures, the accuracies and the episode line: all that changes from one episode to the next."""
        if not hasattr(self, "_axes"):
            return None
        return [self._support_im, *self._query_ims.values(), *self._accuracy.values(), self._episode_text]

    def describe(self, shown: dict) -> str:
        """The episode number and each method's accuracy on it."""
        accs = ", ".join(f"{k}: {shown[k]['accuracy']:.1f}%" for k in self.methods)
        return f"episode {shown['index']} &nbsp; ({accs})"
