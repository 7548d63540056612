"""Adaptation stepper: watch MAML and a pretrained baseline adapt to a new sine wave, step by step.

Taught in ``notebooks/05_maml.ipynb`` (Figure 2 of Finn et al. 2017, arXiv:1703.03400).

A slider picks the number of inner gradient steps ``k`` (0..``max_steps``);
"New task" draws another sinusoid, "New support points" redraws its ``K``
support points. The plot shows the true curve, the support points, and each
model's prediction after ``k`` steps of size ``α`` on the support points, with
its query MSE (on ``n_query`` fresh points of the same task) in the legend.
"""
from __future__ import annotations

import math
import numbers

import ipywidgets as W
import torch

from ..config import shifted_seed, whole_seed
from ..data.sinusoid import SinusoidTasks
from ..methods.maml_regression import adapt, mse
from .base import Explorer, check_whole
from .plotting import text_points


class AdaptationStepper(Explorer):
    """Slider over inner steps for one or more sinusoid regressors.

    Args:
        models: ``{label: SinusoidMLP}``, e.g. ``{"MAML": ..., "pretrained": ...}``.
        n_shot: support points per task (``K``).
        inner_lr: step size ``α`` of the adaptation.
        max_steps: the slider's range is ``0..max_steps``.
        n_query: fresh points of the task for the query MSE.
        seed: seeds the task sampler.

    Attributes:
        controls: the ipywidgets (``steps``, ``new_task``, ``new_points``).
        shown: what the last :meth:`render` drew: ``steps``, ``amplitude``, ``phase``,
            ``support_x``, and per label ``{"curve": (200,) predictions, "mse": float}``.
    """

    persistent_axes = True  # the axes and lines are kept; a redraw changes their data

    def __init__(self, models: dict, n_shot: int = 10, inner_lr: float = 0.01, max_steps: int = 10,
                 n_query: int = 100, seed: int = 0):
        if not isinstance(models, dict):
            raise ValueError(f"models is a {type(models).__name__}; give a dict {{label: SinusoidMLP}}, "
                             "e.g. {'MAML': model}")
        if not models:
            raise ValueError("models is empty; give at least one {label: SinusoidMLP}")
        check_whole(n_shot=(n_shot, 1, None), max_steps=(max_steps, 0, None), n_query=(n_query, 1, None))
        finite = isinstance(inner_lr, numbers.Real) and not isinstance(inner_lr, bool) and math.isfinite(inner_lr)
        if not finite or inner_lr < 0:  # nan or inf drew NaN curves with "MSE nan" in the legend
            raise ValueError(f"inner_lr={inner_lr!r}: give a finite step size of at least 0, e.g. 0.01")
        seed = whole_seed(seed)
        self.models, self.n_shot, self.inner_lr, self.n_query = dict(models), n_shot, inner_lr, n_query
        self.tasks = SinusoidTasks(seed=seed)
        self.points = torch.Generator().manual_seed(shifted_seed(seed, 1))
        self.grid = torch.linspace(-5, 5, 200).view(-1, 1)  # (200, 1)
        self.steps = W.IntSlider(value=0, min=0, max=max_steps, description="inner steps k")
        self.new_task = self.button(self.draw_task, description="New task", icon="refresh")
        self.new_points = self.button(self.draw_points, description="New support points", icon="random")
        self.controls = {"steps": self.steps, "new_task": self.new_task, "new_points": self.new_points}
        self._ready = False  # the first task is drawn before there is a figure to redraw
        self.draw_task()
        super().__init__([[self.steps, self.new_task, self.new_points]], figsize=(7.0, 4.4))
        self._ready = True

    def draw_task(self) -> None:
        """A new sinusoid (amplitude, phase) with new support and query points."""
        ep = self.tasks.sample(1, self.n_shot, self.n_query)
        self.amplitude, self.phase = ep.amplitude, ep.phase
        self.query_x, self.query_y = ep.query_x[0], ep.query_y[0]  # (n_query, 1)
        self.draw_points()

    def draw_points(self) -> None:
        """New ``K`` support points of the current task."""
        lo, hi = self.tasks.x_range
        x = lo + (hi - lo) * torch.rand(1, self.n_shot, 1, generator=self.points)  # (1, K, 1)
        self.support_x = x[0]
        self.support_y = SinusoidTasks.function(x, self.amplitude, self.phase)[0]  # (K, 1)
        if self._ready:  # a call from a button or from code redraws at once, as a slider move does
            self.update()

    def compute(self) -> dict:
        """Adapt every model for ``k`` steps on the support points; its curve and its query MSE."""
        k = self.steps.value
        shown = {"steps": k, "amplitude": float(self.amplitude), "phase": float(self.phase),
                 "support_x": self.support_x.flatten().tolist()}  # (K, 1) -> (K,)
        for label, model in self.models.items():
            dev = next(model.parameters()).device  # the points live on the CPU; each model adapts on its device
            params = adapt(model, self.support_x.to(dev), self.support_y.to(dev), self.inner_lr, k)[-1]
            with torch.no_grad():
                shown[label] = {"curve": model(self.grid.to(dev), params).flatten().cpu(),  # (n_grid, 1) -> (n_grid,)
                                "mse": mse(model, params, self.query_x.to(dev), self.query_y.to(dev)).item()}
        return shown

    def draw(self, fig, s: dict) -> None:
        """Draw the true function, every model's adapted curve and the support points."""
        x = self.grid.flatten()  # (200,)

        def make(fig):
            ax = fig.subplots()
            truth = ax.plot(x, x, color="black", lw=2, label="true function")[0]
            curves = {label: ax.plot(x, x, lw=1.5, ls="--")[0] for label in self.models}
            support = ax.scatter([], [], marker="^", s=50, color="black", zorder=3)  # red means "wrong" in the course
            ax.set(xlabel="x", ylabel="y", xlim=(-5, 5), ylim=(-6, 6))
            return ax, truth, curves, support

        (ax, truth, curves, support), new = self.layout(tuple(self.models), make)
        truth.set_ydata(SinusoidTasks.function(self.grid[None], self.amplitude, self.phase)[0].flatten())  # (200,)
        for label, line in curves.items():
            line.set_ydata(s[label]["curve"])
            line.set_label(f"{label} after {s['steps']} steps (MSE {s[label]['mse']:.2f})")
        support.set_offsets(torch.stack([self.support_x.flatten(), self.support_y.flatten()], 1).numpy())  # (K, 2)
        support.set_label(f"K = {self.n_shot} support points")
        ax.set_title(f"A = {s['amplitude']:.2f}, φ = {s['phase']:.2f}; α = {self.inner_lr}")
        # below the axes, where it hides no curve
        ax.legend(fontsize=text_points(self.fig), loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
        if new:  # the margins do not change from one task or step to the next
            fig.tight_layout()
