"""MAML on sinusoid regression, and the "pretrain on all tasks, then fine-tune" baseline it beats.

Taught in ``notebooks/05_maml.ipynb`` (Figure 2 of the MAML paper).

Finn et al. 2017, arXiv:1703.03400, Section 5.1: a 1-40-40-1 ReLU network;
MAML meta-trains it with ``K`` support points per task, one inner step of
``α = 0.01`` and Adam on the query MSE; the baseline trains the same network to
regress *all* tasks at once (so it learns their average, about zero), and both
are then adapted to a new task with ``k`` plain gradient steps of size ``α`` on
its ``K`` points (the paper tunes the baseline's step size; the course gives both MAML's ``α``, so the
baseline's curve is not the paper's). The network is written for ``params`` dicts, so
``torch.func.vmap`` trains a whole meta-batch of tasks at once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad, vmap

from ..recipe import Recipe


class SinusoidMLP(nn.Module):
    """``(n, 1) -> (n, 1)`` regressor with two hidden ReLU layers of ``hidden`` units."""

    def __init__(self, hidden: int = 40):
        super().__init__()
        self.hidden = hidden
        self.layers = nn.ModuleList([nn.Linear(1, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 1)])

    def forward(self, x: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Predictions ``(n, 1)`` for inputs ``x`` ``(n, 1)``, with the module's weights or with ``params``."""
        p = params if params is not None else dict(self.named_parameters())
        for i in range(3):
            x = F.linear(x, p[f"layers.{i}.weight"], p[f"layers.{i}.bias"])
            x = F.relu(x) if i < 2 else x
        return x


def mse(model: SinusoidMLP, params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of ``model`` with ``params`` on ``x, y`` of shape ``(n, 1)``."""
    return F.mse_loss(model(x, params), y)


def adapt(model: SinusoidMLP, x: torch.Tensor, y: torch.Tensor, lr: float = 0.01, steps: int = 10,
          create_graph: bool = False) -> list[dict[str, torch.Tensor]]:
    """Gradient descent on one task's ``K`` points: the weights after 0, 1, ..., ``steps`` steps.

    Args:
        x, y: ``(K, 1)`` support points of one task.
        lr: step size ``α``.
        create_graph: keep the graph (second-order MAML training).
    """
    params = dict(model.named_parameters())
    path = [params]
    with torch.enable_grad():
        for _ in range(steps):
            grads = torch.autograd.grad(mse(model, params, x, y), list(params.values()), create_graph=create_graph)
            params = {k: p - lr * g for (k, p), g in zip(params.items(), grads)}
            path.append(params)
    return path


def adaptation_mse(model: SinusoidMLP, episode, lr: float = 0.01, steps: int = 10) -> torch.Tensor:
    """Query MSE after 0..``steps`` steps for every task: ``(steps + 1, n_tasks)``."""
    out = torch.empty(steps + 1, len(episode))
    for t in range(len(episode)):
        for k, params in enumerate(adapt(model, episode.support_x[t], episode.support_y[t], lr, steps)):
            with torch.no_grad():
                out[k, t] = mse(model, params, episode.query_x[t], episode.query_y[t])
    return out


def meta_gradient(model: SinusoidMLP, episode, inner_lr: float = 0.01) -> tuple[dict, torch.Tensor]:
    """Second-order MAML meta-gradient (one inner step) of the mean query MSE of a batch of tasks.

    Returns:
        ``({name: gradient}, mean query MSE)``; all tasks run at once under ``vmap``.
    """
    def task_loss(params, sx, sy, qx, qy):
        g = grad(lambda p: mse(model, p, sx, sy))(params)
        return mse(model, {k: v - inner_lr * g[k] for k, v in params.items()}, qx, qy)

    def mean_loss(params):
        loss = vmap(task_loss, in_dims=(None, 0, 0, 0, 0))(params, episode.support_x, episode.support_y,
                                                           episode.query_x, episode.query_y).mean()
        return loss, loss.detach()
    return grad(mean_loss, has_aux=True)(dict(model.named_parameters()))


class SinusoidMAML(SinusoidMLP):
    """The regressor meta-trained by second-order MAML (one inner step of ``inner_lr``) on the query MSE."""

    def __init__(self, hidden: int = 40, inner_lr: float = 0.01):
        super().__init__(hidden)
        self.inner_lr = inner_lr

    def train_step(self, batch, optimizer) -> dict:
        """One meta-update on a batch of tasks (``batch.support_x``: ``(n_tasks, K, 1)``)."""
        grads, loss = meta_gradient(self, batch, self.inner_lr)
        for k, p in self.named_parameters():
            p.grad = grads[k]
        optimizer.step()
        return {"loss": loss.item()}


class SinusoidPretrained(SinusoidMLP):
    """The baseline: one regressor fitted to the points of all tasks at once (plain MSE)."""

    def __init__(self, hidden: int = 40, inner_lr: float = 0.01):
        super().__init__(hidden)
        self.inner_lr = inner_lr

    def train_step(self, batch, optimizer) -> dict:
        """One Adam step on the MSE of every task's support points."""
        loss = F.mse_loss(self(batch.support_x), batch.support_y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}


# The paper's Section 5.1 setting: meta-batches of 25 tasks, K support and K query points, one inner
# step of α = 0.01, Adam 1e-3 (70,000 iterations in the paper; 5000 here, a few minutes on a CPU).
_MAML = Recipe(trainer="regression", steps=5000, lr=1e-3, n_shot=5, n_query=5, meta_batch=25, val_every=0,
               model={"hidden": 40, "inner_lr": 0.01}, options={"objective": "maml"})
RECIPES = {"quick": {"maml_k5": _MAML, "maml_k10": _MAML.replace(n_shot=10, n_query=10),
                     "pretrained": _MAML.replace(n_shot=10, n_query=1, options={"objective": "pretrain"})}}
RECIPES["full"] = RECIPES["paper"] = {k: r.replace(steps=70_000) for k, r in RECIPES["quick"].items()}
