"""Scale-and-shift viewer: the learned Φ of every SS layer, and an episode's embedding with SS on or off.

Taught in ``notebooks/06_mtl.ipynb``.

Left: the per-filter scales ``Φ_S1`` and shifts ``Φ_S2`` of the chosen layer
(bars by filter, sorted by scale) or, for ``"all layers"``, their histograms
across every filter of the backbone; dashed lines mark the initial values (1 and
0), so what meta-transfer learned is the distance from them. Below: the
latent-space explorer (:mod:`fslcourse.widgets.latent_explorer`) on one episode,
whose backbone toggle switches between the meta-transferred backbone ("SS on")
and the same frozen backbone with Φ reset to its initial values ("SS off").
"""
from __future__ import annotations

import copy

import ipywidgets as W
import numpy as np
import torch

from ..models.scale_shift import scale_shift_layers
from .base import Explorer
from .latent_explorer import LatentExplorer
from .plotting import text_points

ALL = "all layers"


def ss_off(model):
    """A copy of ``model`` with every scale reset to 1 and every shift to 0 (the plain frozen backbone)."""
    off = copy.deepcopy(model)
    with torch.no_grad():
        for layer in scale_shift_layers(off.backbone).values():
            layer.scale.fill_(1.0)
            layer.shift.fill_(0.0)
    return off.eval()


class ScaleShiftViewer(Explorer):
    """Φ per layer plus an SS on/off embedding view of one episode.

    Args:
        split: the split to draw episodes from (meta-test for the notebook).
        model: a meta-transferred :class:`~fslcourse.methods.mtl.MTL` with ``mode="ss"``.
        n_way, n_shot, n_query, seed: the explorer's initial episode.

    Attributes:
        layer: dropdown of the SS layers (and ``"all layers"``).
        explorer: the :class:`~fslcourse.widgets.latent_explorer.LatentExplorer` (``explorer.backbone``
            toggles ``"SS off"`` / ``"SS on"``).
        shown: what the last :meth:`render` drew (``scale``, ``shift`` tensors and the layer).
    """

    persistent_axes = True  # two axes kept per kind of plot (all layers: histograms; one layer: bars)

    def __init__(self, split, model, n_way: int = 5, n_shot: int = 1, n_query: int = 5, seed: int = 0):
        self.layers = scale_shift_layers(model.backbone)
        if not self.layers:
            raise ValueError(f"{type(model).__name__} has no scale-and-shift layers; pass an MTL model with mode='ss'")
        self.model = model.eval()
        self.layer = W.Dropdown(options=[ALL] + list(self.layers), value=ALL, description="layer")
        self.controls = {"layer": self.layer}
        self.explorer = LatentExplorer(split, trained=model, untrained=ss_off(model), n_way=n_way, n_shot=n_shot,
                                       n_query=n_query, seed=seed, distance="cosine")
        self.explorer.models = {"SS off": self.explorer.models["untrained"], "SS on": self.explorer.models["trained"]}
        self.explorer.backbone.options = ["SS off", "SS on"]
        self.explorer.backbone.value = "SS on"
        super().__init__([self.layer], figsize=(8.0, 2.8), below=(self.explorer.widget,))

    def values(self, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, shift)`` of one layer (``(C_out,)`` each) or of all layers concatenated."""
        chosen = self.layers.values() if layer == ALL else [self.layers[layer]]
        return (torch.cat([m.scale.detach().cpu() for m in chosen]),  # (total filters,)
                torch.cat([m.shift.detach().cpu() for m in chosen]))  # (total filters,)

    def compute(self) -> dict:
        """The chosen layer and its ``scale`` and ``shift``."""
        scale, shift = self.values(self.layer.value)
        return {"layer": self.layer.value, "scale": scale, "shift": shift}

    def draw(self, fig, s: dict) -> None:
        """Bars per filter (one layer) or histograms (all layers) of the scales and shifts.

        Each panel is one ``stairs`` artist (not a patch per bar or per bin) on axes laid out once with fixed
        margins, so choosing another layer redraws quickly.
        """
        scale, shift = s["scale"], s["shift"]
        (ax_s, ax_b), new = self.layout("panels", lambda fig: fig.subplots(1, 2))
        if new:
            fig.subplots_adjust(left=0.08, right=0.99, bottom=0.2, top=0.84, wspace=0.32)
        ax_s.cla()
        ax_b.cla()
        if s["layer"] == ALL:
            for ax, values, colour, start in ((ax_s, scale, "tab:blue", 1.0), (ax_b, shift, "tab:orange", 0.0)):
                counts, edges = np.histogram(values.numpy(), bins=30)
                ax.stairs(counts, edges, fill=True, color=colour)
                ax.axvline(start, ls="--", c="k")
            ax_s.set(xlabel=r"scale $\Phi_{S_1}$", ylabel="filters")
            ax_b.set(xlabel=r"shift $\Phi_{S_2}$")
        else:
            order = torch.argsort(scale)
            edges = np.arange(len(scale) + 1) - 0.5
            for ax, values, colour, start in ((ax_s, scale, "tab:blue", 1.0), (ax_b, shift, "tab:orange", 0.0)):
                ax.stairs(values[order].numpy(), edges, baseline=0.0, fill=True, color=colour)
                ax.axhline(start, ls="--", c="k")
            ax_s.set(xlabel="filter (sorted by scale)", ylabel=r"scale $\Phi_{S_1}$")
            ax_b.set(xlabel="filter (same order)", ylabel=r"shift $\Phi_{S_2}$")
        fig.suptitle(f"{s['layer']}: {len(scale)} filters, scale {scale.mean():.3f} ± {scale.std():.3f}, "
                     f"shift {shift.mean():.3f} ± {shift.std():.3f}", fontsize=text_points(self.fig))
