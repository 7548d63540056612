"""VAE latent-space explorer: a map of meta-test characters, latent walks, interpolations and generation.

Taught in ``notebooks/07_vae_augmentation.ipynb``.

The map shows every drawing of a few meta-test characters at its code ``[c, mu]`` (class
context and posterior mean of :class:`~fslcourse.generative.vae.ConditionalVAE`), projected on
its top-2 principal components and coloured by character. Two sliders walk the style latent
``z`` of the chosen character along the top-2 principal directions of ``mu`` (in standard
deviations) and decode live; two more pick the characters to interpolate between; the button
draws ``n_shot`` real support drawings of the chosen character and generates ``n_generated`` new
ones from them (prototype mode).
"""
from __future__ import annotations

import ipywidgets as W
import numpy as np
import torch

from ..config import shifted_seed, whole_seed
from ..generative.vae import latent_code
from .base import Explorer, check_whole
from .plotting import class_colour, principal_axes, show_image, text_points


class VAEExplorer(Explorer):
    """Interactive view of a conditional VAE on meta-test characters.

    Args:
        vae: a trained :class:`~fslcourse.generative.vae.ConditionalVAE`.
        split: the split to explore (meta-test in the notebook).
        n_classes: characters on the map (drawn with ``seed``).
        n_shot, n_generated: initial support size and generated count.
        n_steps: images in the interpolation (at least 2: its two ends).
        seed: which characters are shown; also the first generation seed.

    Attributes:
        controls: the ipywidgets (``character``, ``walk_1``, ``walk_2``, ``from_``, ``to``, ``n_shot``,
            ``n_generated``, ``generate``).
        shown: what the last :meth:`render` drew (map coordinates, decoded images ...).
    """

    persistent_axes = True  # the axes are kept while the numbers of images stay the same

    def __init__(self, vae, split, n_classes: int = 8, n_shot: int = 1, n_generated: int = 5, n_steps: int = 7,
                 seed: int = 0):
        check_whole(n_shot=(n_shot, 1, 10), n_generated=(n_generated, 1, 10), n_steps=(n_steps, 2, None),
                    n_classes=(n_classes, 2, None))  # an interpolation has two ends
        seed = whole_seed(seed)
        if n_classes > split.n_classes:
            raise ValueError(f"n_classes={n_classes} must be between 2 and the split's {split.n_classes} classes")
        self.vae, self.split, self.n_steps = vae.eval(), split, n_steps
        self.device = next(vae.parameters()).device
        g = torch.Generator().manual_seed(seed)
        self.classes = torch.randperm(split.n_classes, generator=g)[:n_classes]  # (n_classes,) ids in the split
        self.images = split.get(self.classes, torch.arange(split.n_examples)[None].expand(n_classes, -1))  # ids: (n_classes, n_examples)
        self.labels = torch.arange(n_classes).repeat_interleave(split.n_examples)  # (n_classes * n_examples,)
        x = self.images.flatten(0, 1).to(self.device)  # (n_classes * n_examples, 1, 28, 28)
        codes = latent_code(vae, x, self.labels.to(self.device), n_classes).cpu()  # (n, context_dim + z_dim)
        self.context = codes[:, : vae.context_dim].unflatten(0, (n_classes, -1))[:, 0]  # (n_classes, context_dim)
        self.mu = codes[:, vae.context_dim:]  # (n, z_dim)
        self.map_xy, _, _ = principal_axes(codes)
        _, self.walk_axes, self.walk_std = principal_axes(self.mu)
        names = [(f"{i}: {split.class_name(int(c))}", i) for i, c in enumerate(self.classes)]
        self.character = W.Dropdown(options=names, value=0, description="character")
        self.walk_1 = W.FloatSlider(value=0.0, min=-3.0, max=3.0, step=0.25, description="direction 1 (sd)")
        self.walk_2 = W.FloatSlider(value=0.0, min=-3.0, max=3.0, step=0.25, description="direction 2 (sd)")
        self.from_ = W.Dropdown(options=names, value=0, description="from")
        self.to = W.Dropdown(options=names, value=1, description="to")
        self.n_shot = W.IntSlider(value=n_shot, min=1, max=10, description="K (support)")
        self.n_generated = W.IntSlider(value=n_generated, min=1, max=10, description="m (generated)")
        self.generate = self.button(self._on_generate, description="generate for this support set", icon="magic",
                               layout=W.Layout(width="260px"))
        self.generation = seed  # the button draws new noise each click
        self.controls = {"character": self.character, "walk_1": self.walk_1, "walk_2": self.walk_2,
                         "from_": self.from_, "to": self.to, "n_shot": self.n_shot, "n_generated": self.n_generated,
                         "generate": self.generate}
        super().__init__([[self.character, self.walk_1, self.walk_2], [self.from_, self.to],
                          [self.n_shot, self.n_generated, self.generate], self.status], figsize=(10, 5.6), dpi=80)

    def _on_generate(self) -> None:
        self.generation = shifted_seed(self.generation, 1)
        self.update()

    @torch.no_grad()
    def compute(self) -> dict:
        """Decode the walk, the interpolation and the generated examples for the current controls."""
        k, vae, dev = self.character.value, self.vae, self.device
        c_k = self.context[k].to(dev)[None]  # (1, context_dim)
        z_bar = self.mu[self.labels == k].mean(0)  # (z_dim,)
        steps = torch.tensor([self.walk_1.value, self.walk_2.value])
        z_walk = z_bar + (steps * self.walk_std) @ self.walk_axes  # (z_dim,)
        walk = torch.sigmoid(vae.decode(z_walk.to(dev)[None], c_k)).cpu()  # (1, 1, 28, 28)
        a, b = self.from_.value, self.to.value
        t = torch.linspace(0, 1, self.n_steps)[:, None]  # (n_steps, 1)
        z_a, z_b = self.mu[self.labels == a].mean(0), self.mu[self.labels == b].mean(0)
        z_t = (1 - t) * z_a + t * z_b  # (n_steps, z_dim)
        c_t = (1 - t) * self.context[a] + t * self.context[b]  # (n_steps, context_dim)
        interp = torch.sigmoid(vae.decode(z_t.to(dev), c_t.to(dev))).cpu()  # (n_steps, 1, 28, 28)
        g = torch.Generator().manual_seed(self.generation)
        order = torch.randperm(self.split.n_examples, generator=g)[: self.n_shot.value]
        support = self.images[k, order]  # (n_shot, 1, 28, 28)
        gen, _ = vae.generate(support.to(dev), torch.zeros(len(support), dtype=torch.long, device=dev),
                              self.n_generated.value, g)
        return {"character": k, "class_id": int(self.classes[k]), "map_xy": self.map_xy, "labels": self.labels,
                "walk_steps": steps, "walk_image": walk[0], "from": a, "to": b, "interpolation": interp,
                "support_ids": order, "support": support.cpu(), "generated": gen.cpu(), "generation": self.generation}

    def draw(self, fig, s: dict) -> None:
        """Draw the latent map, the walk, the interpolation and the support set with its generated drawings."""
        n_int, n_s, n_g = len(s["interpolation"]), len(s["support"]), len(s["generated"])

        def make(fig):
            grid = fig.add_gridspec(3, 12, left=0.02, right=0.98, top=0.9, bottom=0.03, hspace=0.6, wspace=0.3)
            ax = fig.add_subplot(grid[:, :5])
            xy = s["map_xy"].numpy()
            others = ax.scatter(xy[:, 0], xy[:, 1], s=14, alpha=0.6)  # every point: sets the limits once
            chosen = ax.scatter(xy[:0, 0], xy[:0, 1], s=34, edgecolors="k", linewidths=0.8)
            ax.set(xticks=[], yticks=[])
            ax.set_title("latent map: PCA of [c, μ]\none colour per character", fontsize=text_points(fig))
            interp, examples = grid[1, 5:].subgridspec(1, n_int), grid[2, 5:].subgridspec(1, n_s + n_g)
            return {"others": others, "chosen": chosen, "walk": fig.add_subplot(grid[0, 5:7]),
                    "interpolation": [fig.add_subplot(interp[0, j]) for j in range(n_int)],
                    "examples": [fig.add_subplot(examples[0, j]) for j in range(n_s + n_g)]}

        art, _ = self.layout((n_int, n_s, n_g), make)
        xy, labels = s["map_xy"].numpy(), s["labels"].numpy()
        colours = np.array([class_colour(k) for k in labels])
        chosen = labels == s["character"]
        art["others"].set_offsets(xy[~chosen])
        art["others"].set_facecolor(colours[~chosen])
        art["chosen"].set_offsets(xy[chosen])
        art["chosen"].set_facecolor(colours[chosen])
        show_image(art["walk"], s["walk_image"], colour=class_colour(s["character"]))
        art["walk"].set_title(f"walk ({s['walk_steps'][0]:+.2f}, {s['walk_steps'][1]:+.2f}) sd",
                              fontsize=text_points(fig), loc="left")
        for j, a in enumerate(art["interpolation"]):
            edge = class_colour(s["from"]) if j == 0 else class_colour(s["to"]) if j == n_int - 1 else None
            show_image(a, s["interpolation"][j], colour=edge)
        art["interpolation"][0].set_title(f"interpolation from character {s['from']} to {s['to']}",
                                          fontsize=text_points(fig), loc="left")
        for j, a in enumerate(art["examples"]):
            real = j < n_s
            show_image(a, s["support"][j] if real else s["generated"][j - n_s], colour="k" if real else "0.6")
        drawings = "drawing" if n_s == 1 else "drawings"
        art["examples"][0].set_title(f"{n_s} real support {drawings} (black), then {n_g} generated (grey; prototype mode)",
                                     fontsize=text_points(fig), loc="left")

    def describe(self, s: dict) -> str:
        """The chosen character and how many drawings are real and generated."""
        return (f"character {s['character']} ({self.split.class_name(s['class_id'])}); "
                f"{len(s['support'])} real + {len(s['generated'])} generated")
