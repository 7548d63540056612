"""Episode browser: pick a split, N, K, Q and a seed, and see the support and query sets.

Taught in ``notebooks/01_episodes.ipynb``.
"""
from __future__ import annotations

import ipywidgets as W
import torch

from ..config import shifted_seed
from ..data.episodes import Episode, EpisodeSampler
from .base import Explorer, check_whole
from .plotting import class_colour, show_image, text_points


class EpisodeBrowser(Explorer):
    """Interactive view of one episode.

    Args:
        splits: ``{"train": split, "val": split, "test": split}`` (any names).
        n_way, n_shot, n_query, seed: initial control values.

    Attributes:
        controls: the ipywidgets (``split``, ``n_way``, ``n_shot``, ``n_query``, ``seed``, ``next``).
        episode: the episode currently shown.
        status: an HTML line with the classes shown, or the error for impossible settings.
    """

    error_title = "Cannot build this episode"
    persistent_axes = True  # the grid of axes is kept while N, K and Q stay the same (a new seed only changes pixels)

    def __init__(self, splits: dict, n_way: int = 5, n_shot: int = 1, n_query: int = 2, seed: int = 0):
        check_whole(n_way=(n_way, 1, 20), n_shot=(n_shot, 1, 20), n_query=(n_query, 1, 20))  # the sliders' ranges
        if not isinstance(splits, dict) or not splits:
            raise ValueError(f"splits is {type(splits).__name__ if splits else 'empty'}; give a dict of named splits, "
                             "e.g. {'test': data.test}")
        self.splits = splits
        self.split_box = W.Dropdown(options=list(splits), description="split")
        # K and Q reach 20 each, so K + Q > 20 (more drawings than a character has) can be tried and its error
        # seen; sliders redraw when released, so a drag does not queue a redraw per step
        slider = dict(min=1, continuous_update=False)
        self.n_way = W.IntSlider(value=n_way, max=20, description="N (n_way)", **slider)
        self.n_shot = W.IntSlider(value=n_shot, max=20, description="K (n_shot)", **slider)
        self.n_query = W.IntSlider(value=n_query, max=20, description="q (n_query)", **slider)
        self.seed = W.IntText(value=seed, description="seed")
        # the next seed after the top of torch's range is 0, as in the other explorers
        self.next = self.button(lambda: setattr(self.seed, "value", shifted_seed(self.seed.value, 1)),
                                description="next seed", icon="forward")
        self.controls = {"split": self.split_box, "n_way": self.n_way, "n_shot": self.n_shot,
                         "n_query": self.n_query, "seed": self.seed, "next": self.next}
        super().__init__([[self.split_box, self.seed, self.next], [self.n_way, self.n_shot, self.n_query], self.status],
                         figsize=(4.5, 5.6), dpi=100)

    @property
    def episode(self) -> Episode | None:
        """The episode on screen (``None`` after impossible settings)."""
        return self.shown.get("episode")

    @property
    def figure(self):
        """The figure on screen (``None`` after impossible settings)."""
        return self.fig if self.shown else None

    def sample(self) -> Episode:
        """The episode for the current control values (raises ``ValueError`` for impossible ones)."""
        split = self.splits[self.split_box.value]
        sampler = EpisodeSampler(split, self.n_way.value, self.n_shot.value, self.n_query.value,
                                 seed=int(self.seed.value))
        return sampler.sample()

    def compute(self) -> dict:
        """The episode for the current controls and the split it comes from."""
        return {"episode": self.sample(), "split": self.splits[self.split_box.value]}

    def draw(self, fig, shown: dict) -> None:
        """Draw the episode: one row per class, support on the left, query on the right."""
        ep = shown["episode"]
        n_cols = ep.n_shot + ep.n_query

        def make(fig):
            fig.set_size_inches(1.0 * n_cols + 1.5, 1.0 * ep.n_way + 0.6)
            axes = fig.subplots(ep.n_way, n_cols, squeeze=False)
            for k in range(ep.n_way):
                axes[k, 0].set_ylabel(f"label {k}", fontsize=text_points(self.fig), rotation=0, ha="right", va="center")
            return axes

        axes, new = self.layout((ep.n_way, ep.n_shot, ep.n_query), make)
        for k in range(ep.n_way):
            for j in range(ep.n_shot):
                show_image(axes[k, j], ep.support_x[k * ep.n_shot + j], colour=class_colour(k))
            for j in range(ep.n_query):
                show_image(axes[k, ep.n_shot + j], ep.query_x[k * ep.n_query + j], colour="0.6")
        axes[0, 0].set_title("support", fontsize=text_points(self.fig), loc="left")
        axes[0, ep.n_shot].set_title("query", fontsize=text_points(self.fig), loc="left")
        fig.suptitle(f"{shown['split'].name}: {ep.n_way}-way {ep.n_shot}-shot, {ep.n_query} queries per class")
        if new:  # the margins depend on the grid only
            fig.tight_layout()

    def describe(self, shown: dict) -> str:
        """The classes shown, by label."""
        names = [shown["split"].class_name(int(c)) for c in shown["episode"].classes]
        return "classes: " + ", ".join(f"{i}={n}" for i, n in enumerate(names))

    def shown_classes(self) -> torch.Tensor:
        """The original class ids of the episode on screen (empty if none)."""
        return self.episode.classes if self.episode is not None else torch.empty(0, dtype=torch.long)
