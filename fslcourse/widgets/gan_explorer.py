"""GAN explorer: pick a source character, drag noise sliders, interpolate between two z, or see a grid of samples.

Taught in ``notebooks/08_gan_augmentation.ipynb``.

The DAGAN generator :math:`G(x_s, z)` (:class:`~fslcourse.generative.gan.DAGANGenerator`) turns one
source drawing :math:`x_s` of a character into a new drawing for each noise vector :math:`z`.
The *single* view shows the source, the drawing for the current :math:`z` (its first three
coordinates are the sliders, the others are fixed by ``z seed``) and the interpolation
:math:`z_t = (1 - t) z_A + t z_B` between the noise of two seeds. The *sample grid* view shows
``n_grid`` x ``n_grid`` drawings, each for a fresh :math:`z`: if they all look alike, the generator
ignores its noise (mode collapse).
"""
from __future__ import annotations

import ipywidgets as W
import torch

from ..config import shifted_seed, whole_seed
from .base import Explorer, check_whole
from .plotting import show_image, text_points

VIEWS = ("single", "sample grid")


class GANExplorer(Explorer):
    """Interactive view of a DAGAN generator on the drawings of a split.

    Args:
        generator: a trained :class:`~fslcourse.generative.gan.DAGANGenerator`.
        split: the split whose characters are the sources (meta-test in the notebook).
        n_classes: characters offered (drawn with ``seed``).
        n_steps: images in the interpolation (at least 2: its two ends).
        seed: which characters are offered; also the initial ``z seed`` (``z_A seed`` and ``z_B seed``: the next two).

    Attributes:
        controls: the ipywidgets (``character``, ``source``, ``z_1``, ``z_2``, ``z_3``, ``z_seed``,
            ``seed_a``, ``seed_b``, ``view``, ``n_grid``).
        shown: what the last :meth:`render` drew (the source, the ``z`` used, the generated images ...).
    """

    error_title = "Cannot generate"  # a seed out of torch's range: said in the status line
    persistent_axes = True  # the axes are kept while the view (and the grid size) stay the same

    def __init__(self, generator, split, n_classes: int = 8, n_steps: int = 7, seed: int = 0):
        check_whole(n_steps=(n_steps, 2, None), n_classes=(n_classes, 1, None))  # an interpolation has two ends
        seed = whole_seed(seed)
        if n_classes > split.n_classes:
            raise ValueError(f"n_classes={n_classes} must be between 1 and the split's {split.n_classes} classes")
        self.gen, self.split, self.n_steps = generator.eval(), split, n_steps
        self.device = next(generator.parameters()).device
        self.classes = torch.randperm(split.n_classes, generator=torch.Generator().manual_seed(seed))[:n_classes]
        names = [(f"{i}: {split.class_name(int(c))}", i) for i, c in enumerate(self.classes)]
        self.character = W.Dropdown(options=names, value=0, description="character")
        self.source = W.IntSlider(value=0, min=0, max=split.n_examples - 1, description="drawing")
        self.z_1, self.z_2, self.z_3 = (W.FloatSlider(value=0.0, min=-3.0, max=3.0, step=0.25, description=f"z[{i}]")
                                        for i in range(3))
        self.z_seed = W.IntText(value=seed, description="z seed")
        self.seed_a = W.IntText(value=shifted_seed(seed, 1), description="z_A seed")
        self.seed_b = W.IntText(value=shifted_seed(seed, 2), description="z_B seed")
        self.view = W.ToggleButtons(options=VIEWS, value="single", description="view")
        self.n_grid = W.IntSlider(value=4, min=2, max=8, description="grid size")
        self.controls = {"character": self.character, "source": self.source, "z_1": self.z_1, "z_2": self.z_2,
                         "z_3": self.z_3, "z_seed": self.z_seed, "seed_a": self.seed_a, "seed_b": self.seed_b,
                         "view": self.view, "n_grid": self.n_grid}
        self.view.observe(lambda _change: self._enable_for_view(), names="value")
        self._enable_for_view()
        super().__init__([[self.character, self.source, self.view], [self.z_1, self.z_2, self.z_3],
                          [self.z_seed, self.seed_a, self.seed_b], self.n_grid, self.status], figsize=(9, 4), dpi=80)

    def _enable_for_view(self) -> None:
        """Grey out the controls the current view does not use (moving z[0] changed nothing in the sample grid)."""
        grid = self.view.value != "single"
        for control in (self.z_1, self.z_2, self.z_3, self.seed_a, self.seed_b):
            control.disabled = grid
        self.n_grid.disabled = not grid

    def noise(self, seed: int, n: int = 1, name: str = "seed") -> torch.Tensor:
        """``(n, z_dim)`` standard normal noise from ``torch.Generator().manual_seed(seed)``.

        Raises:
            ValueError: ``seed`` is not a whole number in torch's range (``name``: the control that gave it).
        """
        return torch.randn(n, self.gen.z_dim, generator=torch.Generator().manual_seed(whole_seed(seed, name)))

    @torch.no_grad()
    def compute(self) -> dict:
        """The source drawing and what the generator makes of it for the current controls."""
        k = self.character.value
        source = self.split.get(self.classes[k:k + 1], torch.tensor([[self.source.value]]))[0]  # (1, 1, 28, 28)
        s = {"character": k, "class_id": int(self.classes[k]), "source": source[0], "view": self.view.value}
        if self.view.value == "single":
            z = self.noise(self.z_seed.value, name="z seed")  # (1, z_dim)
            z[0, :3] = torch.tensor([self.z_1.value, self.z_2.value, self.z_3.value])
            t = torch.linspace(0, 1, self.n_steps)[:, None]  # (n_steps, 1)
            z_a, z_b = self.noise(self.seed_a.value, name="z_A seed"), self.noise(self.seed_b.value, name="z_B seed")
            z_t = (1 - t) * z_a + t * z_b  # (n_steps, z_dim)
            images = self.gen(source.expand(1 + self.n_steps, -1, -1, -1).to(self.device),
                              torch.cat([z, z_t]).to(self.device)).cpu()  # (1 + n_steps, 1, 28, 28)
            s.update(z=z[0], generated=images[:1], z_interpolation=z_t, interpolation=images[1:])
        else:
            n = self.n_grid.value ** 2
            z = self.noise(self.z_seed.value, n, name="z seed")  # (n_grid^2, z_dim)
            s.update(z=z, generated=self.gen(source.expand(n, -1, -1, -1).to(self.device), z.to(self.device)).cpu())  # (n, 1, H, W)
        return s

    def draw(self, fig, s: dict) -> None:
        """Draw the source with the single view (one ``z`` and the interpolation) or the sample grid."""
        n = self.n_grid.value

        def make(fig):
            if s["view"] == "single":
                grid = fig.add_gridspec(2, max(3, self.n_steps), left=0.02, right=0.98, top=0.84, bottom=0.1, hspace=0.55)
                return {"source": fig.add_subplot(grid[0, 0]), "images": [fig.add_subplot(grid[0, 2])] + [
                    fig.add_subplot(grid[1, j]) for j in range(self.n_steps)]}
            # square cells: as wide as the figure allows for the cells' height (with the default 0.2 gaps), the grid
            # centred, so that the samples sit side by side instead of spread over the figure's width
            width, height = fig.get_size_inches()
            cell = 0.88 * height / (n + 0.2 * (n - 1))  # inches
            span = min(0.96, cell * (n + 2 + 0.2 * (n + 1)) / width)
            grid = fig.add_gridspec(n, n + 2, left=0.5 - span / 2, right=0.5 + span / 2, top=0.9, bottom=0.02)
            return {"source": fig.add_subplot(grid[: min(2, n), :2]), "images": [
                fig.add_subplot(grid[j // n, 2 + j % n]) for j in range(n * n)]}

        axes, _ = self.layout((s["view"], n if s["view"] != "single" else None), make)
        show_image(axes["source"], s["source"], title="source", colour="k")
        if s["view"] == "single":
            z = s["z"]
            show_image(axes["images"][0], s["generated"][0],
                       title=f"G(x, z)\nz[:3] = ({z[0]:+.2f}, {z[1]:+.2f}, {z[2]:+.2f})")
            row = axes["images"][1:]
            for j, ax in enumerate(row):
                show_image(ax, s["interpolation"][j])
                ax.set_xlabel(f"t = {j / max(1, self.n_steps - 1):.2f}", fontsize=text_points(fig), labelpad=2)
            row[0].set_title(f"interpolating z from seed {self.seed_a.value} (t = 0) to seed {self.seed_b.value} "
                             "(t = 1)", fontsize=text_points(fig), loc="left")
        else:
            for j in range(n * n):
                show_image(axes["images"][j], s["generated"][j])
            axes["images"][0].set_title(f"{n * n} samples, one z each (z seed {self.z_seed.value})",
                                        fontsize=text_points(fig), loc="left")

    def describe(self, s: dict) -> str:
        """The chosen character and drawing, and how many drawings were generated."""
        return (f"character {s['character']} ({self.split.class_name(s['class_id'])}), drawing "
                f"{self.source.value}; {len(s['generated'])} generated ({s['view']} view)")
