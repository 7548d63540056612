"""Denoising-trajectory explorer: watch DDIM turn noise into a drawing of a new character.

Taught in ``notebooks/09_diffusion_augmentation.ipynb``.

The support drawings of a chosen character (from the split, usually meta-test) give the
condition ``c`` (their prototype in the conditioning backbone's space). A DDIM run of
``n_steps`` steps with guidance scale ``w`` starts from fixed seeded noise ``x_T``; the time
slider moves along it from ``t = T`` (noise) down to ``t = 0`` and shows, for each sample, the
current ``x_t`` and the model's prediction ``x0_hat`` of the clean drawing at that step. A run is computed
lazily: a new character shown at ``t = T`` costs one network call, and moving the slider towards 0 continues
the same run from where it stopped (:func:`~fslcourse.generative.diffusion.denoise_steps`).
"""
from __future__ import annotations

import ipywidgets as W
import numpy as np
import torch

from ..config import whole_seed
from ..generative.diffusion import class_conditions, ddim_timesteps, denoise_steps
from .base import Explorer, check_whole
from .plotting import text_points, tile

KEEP_RUNS = 16  # DDIM runs kept, so going back to a character or a guidance shows it at once


STRIP = 34  # pixels per drawing in a strip: 28, and a 3-pixel margin on each side


def _strip(images: torch.Tensor, width: int, frame: bool = False) -> np.ndarray:
    """``(n, 1, 28, 28)`` drawings (ink = 1) side by side as dark ink on white paper, ``width`` slots wide.

    Returns:
        ``(STRIP, width * STRIP)`` grey levels: :func:`~fslcourse.widgets.plotting.tile`'s cells, framed in black
        around a real drawing (``frame``), else in white.
    """
    ink = images.detach().cpu().squeeze(1).numpy()  # (n, 1, 28, 28) -> (n, 28, 28)
    return tile(ink, np.full((len(ink), 3), 0.0 if frame else 1.0), None, 1, width)[..., 0]  # (STRIP, width * STRIP)


class DiffusionExplorer(Explorer):
    """Interactive view of a conditional diffusion model's denoising trajectory.

    Args:
        model, schedule: the trained ε_θ and its :class:`~fslcourse.generative.diffusion.Schedule`.
        backbone: the conditioning backbone ``(n, 1, 28, 28) -> (n, D)``.
        split: where the characters come from (meta-test in the notebook).
        n_classes: characters to choose from (drawn with ``seed``).
        n_shot: initial number of support drawings (K).
        n_samples: samples drawn from the same condition.
        seed: which characters, which support drawings, and the starting noise ``x_T``.

    Attributes:
        controls: ``t`` (T .. 0), ``guidance`` (w), ``n_steps`` (DDIM steps), ``character``, ``n_shot``.
        shown: what the last :meth:`render` drew (``t``, ``x_t``, ``x0_hat``, ``support``, ...).
    """

    persistent_axes = True  # the axes are kept while the number of samples and support drawings stay the same

    def __init__(self, model, schedule, backbone, split, n_classes: int = 5, n_shot: int = 5, n_samples: int = 4,
                 seed: int = 0):
        check_whole(n_classes=(n_classes, 1, None), n_shot=(n_shot, 1, 10), n_samples=(n_samples, 1, None))
        seed = whole_seed(seed)
        if n_classes > split.n_classes:
            raise ValueError(f"n_classes={n_classes} but the split has {split.n_classes} classes; lower n_classes")
        self.model, self.schedule, self.backbone, self.split = model.eval(), schedule, backbone.eval(), split
        self.device = next(model.parameters()).device
        g = torch.Generator().manual_seed(seed)
        self.classes = torch.randperm(split.n_classes, generator=g)[:n_classes]  # (n_classes,)
        self.order = torch.randperm(split.n_examples, generator=g)  # which drawings are the support
        self.x_T = torch.randn(n_samples, 1, 28, 28, generator=g)  # (n_samples, 1, 28, 28), fixed starting noise
        T = schedule.T
        self.t = W.IntSlider(value=T, min=0, max=T, description="t (T → 0)")
        self.guidance = W.FloatSlider(value=2.0, min=0.0, max=5.0, step=0.5, description="guidance w")
        # 10 steps by default: the DDIM setting notebook 09 augments with, and a new run stays interactive on a CPU
        self.n_steps = W.Dropdown(options=[s for s in (5, 10, 20, 50, T) if s <= T], value=min(10, T),
                                  description="DDIM steps")
        self.character = W.Dropdown(options=[(f"{i}: {split.class_name(int(c))}", i) for i, c in
                                             enumerate(self.classes)], value=0, description="character")
        self.n_shot = W.IntSlider(value=n_shot, min=1, max=10, description="K (support)")
        self.controls = {"t": self.t, "guidance": self.guidance, "n_steps": self.n_steps,
                         "character": self.character, "n_shot": self.n_shot}
        self._cache: dict = {}
        super().__init__([[self.t, self.guidance, self.n_steps], [self.character, self.n_shot], self.status],
                         figsize=(7, 4.2), dpi=80)

    def run(self) -> dict:
        """The current settings' DDIM run: its support drawings, step times and the steps computed so far (cached)."""
        key = (self.character.value, self.n_shot.value, self.guidance.value, self.n_steps.value)
        if key not in self._cache:
            k = self.character.value
            ids = self.order[: self.n_shot.value][None]  # (1, K)
            support = self.split.get(self.classes[k:k + 1], ids)[0].to(self.device)  # (K, 1, 28, 28)
            c = class_conditions(self.backbone, support, torch.zeros(len(support), dtype=torch.long,
                                                                     device=self.device), 1)  # (1, D)
            steps = denoise_steps(self.model, c.expand(len(self.x_T), -1), self.schedule, sampler="ddim",  # c: (n, D)
                                  n_steps=self.n_steps.value, w=self.guidance.value, x_T=self.x_T)
            if len(self._cache) >= KEEP_RUNS:  # a run keeps every step: about 5 MB at 200 steps; the latest few
                del self._cache[next(iter(self._cache))]
            # step times t_i in T-1 .. 0 (x_t before the step), then -1 (the final x_0)
            times = ddim_timesteps(self.schedule.T, self.n_steps.value) + [-1]
            self._cache[key] = {"support": support.cpu(), "times": times, "steps": steps, "path": []}
        return self._cache[key]

    def trajectory(self, upto: int | None = None) -> tuple[torch.Tensor, list]:
        """The support drawings ``(K, 1, 28, 28)`` and the DDIM trajectory ``[(t, x_t, x0_hat), ...]``.

        Args:
            upto: compute the run up to this step index only (``None``: to the end, the final ``x_0`` included).
        """
        run = self.run()
        last = len(run["times"]) - 1 if upto is None else upto
        while len(run["path"]) <= last:
            with torch.no_grad():  # the generator's step runs here: no graph to record
                t, x, x0 = next(run["steps"])
            run["path"].append((t, x, x0) if t >= 0 else (t, x.cpu(), x.cpu()))
        return run["support"], run["path"]

    def compute(self) -> dict:
        """The step of the trajectory nearest to the time slider (the slider's T is the start, x_T)."""
        run = self.run()
        times = torch.tensor([t + 1 for t in run["times"]])  # slider units: T .. 0
        i = int((times - self.t.value).abs().argmin())
        support, path = self.trajectory(upto=i)
        t, x_t, x0 = path[i]
        return {"t": t + 1, "step": i, "n_steps": self.n_steps.value, "guidance": self.guidance.value,
                "character": self.character.value, "class_id": int(self.classes[self.character.value]),
                "support": support, "x_t": (x_t.clamp(-1, 1) + 1) / 2, "x0_hat": (x0.clamp(-1, 1) + 1) / 2}

    def draw(self, fig, s: dict) -> None:
        """Draw ``x_t`` and ``x0_hat`` for every sample above the support drawings: one strip image per row.

        Three images instead of one axes per drawing: drawing and encoding the picture cost a third as much.
        """
        n, k = len(s["x_t"]), len(s["support"])

        def make(fig):
            grid = fig.add_gridspec(3, 1, left=0.19, right=0.99, top=0.88, bottom=0.02, hspace=0.15)
            axes = [fig.add_subplot(grid[i, 0]) for i in range(3)]
            width = max(n, k)
            images = []
            for ax, label in zip(axes, ("x_t", "predicted x̂_0", "support")):
                images.append(ax.imshow(np.ones((STRIP, width * STRIP)), cmap="gray", vmin=0, vmax=1,
                                        interpolation="nearest"))
                ax.set(xticks=[], yticks=[])
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=text_points(fig))
                ax.spines[:].set_visible(False)
            return images

        images, _ = self.layout((n, k), make)
        width = max(n, k)
        images[0].set_data(_strip(s["x_t"], width))
        images[1].set_data(_strip(s["x0_hat"], width))
        images[2].set_data(_strip(s["support"], width, frame=True))
        fig.suptitle(f"t = {s['t']} (step {s['step']} of {s['n_steps']} DDIM steps), guidance w = {s['guidance']:.1f}",
                     fontsize=text_points(self.fig))

    def describe(self, s: dict) -> str:
        """The chosen character, its support size and the time shown."""
        return (f"character {s['character']} ({self.split.class_name(s['class_id'])}): "
                f"{len(s['support'])} support drawings; showing t = {s['t']}")
