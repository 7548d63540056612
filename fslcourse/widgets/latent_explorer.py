"""Latent-space explorer: one episode's embeddings, prototypes and decision regions in 2-D.

Taught in ``notebooks/02_protonet.ipynb``.

The support and query embeddings and the class prototypes of one episode are
projected to 2-D with PCA (torch SVD, fitted on the episode's embeddings) or
t-SNE (van der Maaten & Hinton 2008; a small exact implementation in torch, since
scikit-learn is not a course dependency). With PCA, the background shows the
nearest-prototype regions *in the projected plane* (an approximation of the
high-dimensional decision rule); queries the model gets wrong (in the full
embedding space) are circled in red. Toggle between an untrained and a trained
backbone to see what meta-training does to the geometry.
"""
from __future__ import annotations

import ipywidgets as W
import numpy as np
import torch
from matplotlib.lines import Line2D

from ..data.episodes import Episode, EpisodeSampler
from ..methods.base import prototypes
from ..methods.protonet import protonet_logits
from .base import Explorer, check_whole
from .plotting import WRONG, class_colour, principal_axes, text_points


def pca_2d(points: torch.Tensor) -> torch.Tensor:
    """Project ``(n, D)`` points onto their top-2 principal components: ``(n, 2)`` (deterministic signs)."""
    out, _, _ = principal_axes(points, 2)  # (n, <=2)
    if out.shape[1] < 2:  # fewer than 2 distinct directions
        out = torch.cat([out, out.new_zeros(len(out), 2 - out.shape[1])], 1)
    return out


def tsne_2d(points: torch.Tensor, perplexity: float = 10.0, steps: int = 300, seed: int = 0,
            learning_rate: float = 50.0) -> torch.Tensor:
    """Exact t-SNE of ``(n, D)`` points to ``(n, 2)`` (van der Maaten & Hinton 2008), for small ``n``."""
    x = points.cpu().double()  # on the CPU: MPS has no float64
    n = len(x)
    perplexity = min(perplexity, max(1.0, (n - 1) / 3))
    d2 = torch.cdist(x, x).pow(2)  # (n, n)
    beta = torch.ones(n, 1, dtype=x.dtype)
    lo, hi = torch.zeros_like(beta), torch.full_like(beta, float("inf"))
    eye = torch.eye(n, dtype=torch.bool)
    for _ in range(50):  # binary search of each point's precision to match the perplexity
        p = torch.exp(-(d2 - d2.masked_fill(eye, float("inf")).min(1, keepdim=True).values) * beta)
        p = p.masked_fill(eye, 0)
        p = p / p.sum(1, keepdim=True)
        entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(1, keepdim=True)
        too_flat = entropy > np.log(perplexity)
        lo = torch.where(too_flat, beta, lo)
        hi = torch.where(too_flat, hi, beta)
        beta = torch.where(torch.isinf(hi), beta * 2, (lo + hi) / 2)
    p = (p + p.T) / (2 * n)
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(n, 2, generator=g, dtype=x.dtype) * 1e-2
    velocity, gains = torch.zeros_like(y), torch.ones_like(y)
    for it in range(steps):
        exaggeration = 12.0 if it < 100 else 1.0
        diff = y[:, None] - y[None]  # (n, n, 2)
        inv = (1 / (1 + diff.pow(2).sum(-1))).masked_fill(eye, 0)  # (n, n) Student-t kernel
        q = inv / inv.sum()
        grad = 4 * ((exaggeration * p - q) * inv)[..., None].mul(diff).sum(1)  # (n, 2)
        gains = torch.where((grad > 0) != (velocity > 0), gains + 0.2, gains * 0.8).clamp_min(0.01)
        velocity = (0.5 if it < 100 else 0.8) * velocity - learning_rate * gains * grad
        y = y + velocity
    return (y - y.mean(0)).float()


class LatentExplorer(Explorer):
    """2-D view of one episode in a ProtoNet-style embedding.

    Args:
        split: the :class:`~fslcourse.data.splits.ImageSplit` to draw episodes from.
        trained: a method with ``embed(x) -> (n, D)`` (e.g. a trained ProtoNet).
        untrained: the same architecture before training (default: none, toggle hidden).
        n_way, n_shot, n_query, seed: initial controls.
        projection: ``"pca"`` or ``"tsne"``.
        distance: ``"euclidean"`` or ``"cosine"`` (default: ``trained.distance`` if it has one).

    Attributes:
        controls: dict of the ipywidgets (``seed``, ``n_way``, ``n_shot``, ``backbone``, ``projection``).
        shown: what the last :meth:`render` drew (episode, coordinates, predictions, accuracy ...).
    """

    error_title = "Cannot draw this episode"
    persistent_axes = True  # one axes whose artists are kept; a redraw changes their data

    def __init__(self, split, trained, untrained=None, n_way: int = 5, n_shot: int = 5, n_query: int = 5,
                 seed: int = 0, projection: str = "pca", distance: str | None = None):
        check_whole(n_way=(n_way, 2, 20), n_shot=(n_shot, 1, 10), n_query=(n_query, 1, None))  # the sliders' ranges
        if projection not in ("pca", "tsne"):
            raise ValueError(f"projection={projection!r} is not known; use 'pca' or 'tsne'")
        self.split, self.n_query = split, n_query
        self.models = {"trained": trained} if untrained is None else {"untrained": untrained, "trained": trained}
        self.distance = distance or getattr(trained, "distance", "euclidean")
        self.seed = W.IntText(value=seed, description="episode seed")
        self.n_way = W.IntSlider(value=n_way, min=2, max=20, description="N (n_way)")
        self.n_shot = W.IntSlider(value=n_shot, min=1, max=10, description="K (n_shot)")
        self.backbone = W.ToggleButtons(options=list(self.models), value="trained", description="backbone")
        self.projection = W.ToggleButtons(options=["pca", "tsne"], value=projection, description="projection")
        self.controls = {"seed": self.seed, "n_way": self.n_way, "n_shot": self.n_shot,
                         "backbone": self.backbone, "projection": self.projection}
        self._embedded: dict = {}  # (seed, N, K, backbone, weights) -> (episode, embeddings)
        super().__init__([[self.seed, self.n_way, self.n_shot], [self.backbone, self.projection], self.status],
                         figsize=(5.2, 4.6))

    def episode(self) -> Episode:
        """The episode for the current controls (its images on the split's device)."""
        return EpisodeSampler(self.split, self.n_way.value, self.n_shot.value, self.n_query,
                              seed=int(self.seed.value)).sample()

    @torch.no_grad()
    def embedded(self) -> tuple[Episode, torch.Tensor]:
        """The current episode and its embeddings ``(n_support + n_query_total, D)`` on the CPU.

        Kept for the last few (seed, N, K, backbone): toggling the projection or going back does not embed again.
        The key holds the model's weights' version counters, so weights changed in place (more training) embed anew.
        """
        model = self.models[self.backbone.value]
        weights = (id(model), sum(p._version for p in model.parameters()))  # bumped by every in-place change
        key = (int(self.seed.value), self.n_way.value, self.n_shot.value, self.backbone.value, weights)
        if key not in self._embedded:
            ep = self.episode()
            model.eval()
            device = next(model.parameters()).device
            z = model.embed(torch.cat([ep.support_x, ep.query_x]).to(device)).cpu()  # (n_support + n_query_total, D)
            if len(self._embedded) >= 8:
                del self._embedded[next(iter(self._embedded))]
            self._embedded[key] = (ep, z)
        return self._embedded[key]

    @torch.no_grad()
    def compute(self) -> dict:
        """Embed, classify and project the current episode; returns the data :meth:`draw` draws."""
        ep, z = self.embedded()
        z_s, z_q = z[: len(ep.support_x)], z[len(ep.support_x):]
        protos = prototypes(z_s, ep.support_y.cpu(), ep.n_way)  # (n_way, D)
        pred = protonet_logits(z_q, protos, self.distance).argmax(1)
        points = torch.cat([z_s, z_q, protos])  # (n_support + n_query_total + n_way, D)
        if self.distance == "cosine":
            points = torch.nn.functional.normalize(points, dim=1)
        xy = pca_2d(points) if self.projection.value == "pca" else tsne_2d(points, seed=int(self.seed.value))
        n_s, n_q = len(z_s), len(z_q)
        query_y = ep.query_y.cpu()
        return {"episode": ep, "support_xy": xy[:n_s], "query_xy": xy[n_s:n_s + n_q],
                "prototype_xy": xy[n_s + n_q:], "support_y": ep.support_y.cpu(), "query_y": query_y,
                "pred": pred, "wrong": pred != query_y, "accuracy": 100 * (pred == query_y).float().mean().item(),
                "backbone": self.backbone.value, "projection": self.projection.value}

    def draw(self, fig, s: dict) -> None:
        """Draw the projected support, queries and prototypes, the PCA regions and the misclassified queries."""

        def make(fig):  # one axes and its artists, kept: a redraw only changes their data
            ax = fig.add_subplot(111)
            regions = ax.imshow(np.zeros((80, 80, 3)), origin="lower", alpha=0.25, aspect="auto", extent=(0, 1, 0, 1))
            dots = [ax.scatter([], [], marker="o", s=30, edgecolors="k", linewidths=0.4, label="support"),
                    ax.scatter([], [], marker="^", s=30, edgecolors="k", linewidths=0.4, label="query (true class)"),
                    ax.scatter([], [], marker="*", s=260, edgecolors="k", linewidths=1.0, label="prototype")]
            # a red square, a shape no other marker has (circles are support points)
            wrong = ax.scatter([], [], marker="s", facecolors="none", edgecolors=[WRONG], s=160, linewidths=1.8,
                               label="misclassified query")
            ax.set(xticks=[], yticks=[])
            # the marker key, under the axes: grey stand-ins, since a marker's colour is its class
            fig.subplots_adjust(bottom=0.17)
            key = [Line2D([], [], ls="none", marker="o", ms=6, mfc="0.7", mec="k", mew=0.4, label="support"),
                   Line2D([], [], ls="none", marker="^", ms=6, mfc="0.7", mec="k", mew=0.4,
                          label="query (true class)"),
                   Line2D([], [], ls="none", marker="*", ms=14, mfc="0.7", mec="k", mew=1.0, label="prototype"),
                   Line2D([], [], ls="none", marker="s", ms=11, mfc="none", mec=WRONG, mew=1.8,
                          label="misclassified query")]
            ax.legend(handles=key, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=2, frameon=False,
                      fontsize=text_points(fig), handletextpad=0.3, columnspacing=1.2, borderaxespad=0.2)
            return ax, regions, dots, wrong

        (ax, regions, (support, query, protos), wrong), _ = self.layout(None, make)
        n_way = s["episode"].n_way
        colours = np.array([class_colour(k) for k in range(n_way)])
        allxy = torch.cat([s["support_xy"], s["query_xy"], s["prototype_xy"]])
        lo, hi = allxy.min(0).values, allxy.max(0).values
        pad = 0.08 * (hi - lo).clamp_min(1e-6)
        lo, hi = lo - pad, hi + pad
        regions.set_visible(s["projection"] == "pca")
        if s["projection"] == "pca":  # nearest projected prototype on a grid
            gx, gy = torch.meshgrid(torch.linspace(lo[0], hi[0], 80), torch.linspace(lo[1], hi[1], 80), indexing="xy")
            grid = torch.stack([gx.flatten(), gy.flatten()], 1)  # (80*80, 2)
            region = torch.cdist(grid, s["prototype_xy"]).argmin(1).reshape(80, 80)  # (rows=y, cols=x)
            regions.set_data(colours[region.numpy()])
            regions.set_extent((lo[0].item(), hi[0].item(), lo[1].item(), hi[1].item()))
        sxy, qxy, pxy = s["support_xy"].numpy(), s["query_xy"].numpy(), s["prototype_xy"].numpy()
        for dots, xy, c in ((support, sxy, colours[s["support_y"].numpy()]), (query, qxy, colours[s["query_y"].numpy()]),
                            (protos, pxy, colours)):
            dots.set_offsets(xy)
            dots.set_facecolor(c)
        wrong.set_offsets(qxy[s["wrong"].numpy()].reshape(-1, 2))  # (n_wrong, 2)
        ax.set_xlim(lo[0].item(), hi[0].item())
        ax.set_ylim(lo[1].item(), hi[1].item())
        ep = s["episode"]
        ax.set_title(f"{s['backbone']} backbone, {s['projection'].upper()}: {ep.n_way}-way {ep.n_shot}-shot"
                     f"\nnearest-prototype accuracy {s['accuracy']:.1f}%", fontsize=text_points(self.fig))

    def describe(self, s: dict) -> str:
        """How many queries are misclassified, and what the markers mean."""
        # the picture's rule, which a model that adapts a head per episode (MTL) does not follow exactly
        return (f"{int(s['wrong'].sum())} of {len(s['wrong'])} queries misclassified by the nearest prototype "
                "in the embedding (red squares). "
                "Circles: support; triangles: queries (true class colour); stars: prototypes; "
                "background: nearest projected prototype (PCA only).")
