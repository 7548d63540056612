"""MAML on sinusoid regression, and the "pretrain on all tasks, then fine-tune" baseline it beats.

Taught in ``notebooks/04_maml.ipynb`` (Figure 2 of the MAML paper).

Finn et al. 2017, arXiv:1703.03400, Section 5.1: a 1-40-40-1 ReLU network;
MAML meta-trains it with ``K`` support points per task, one inner step of
``α = 0.01`` and Adam on the query MSE; the baseline trains the same network to
regress *all* tasks at once (so it learns their average, about zero), and both
are then adapted to a new task with ``k`` plain gradient steps of size ``α`` on
its ``K`` points. The network is written for ``params`` dicts, so
``torch.func.vmap`` trains a whole meta-batch of tasks at once.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad, vmap

from ..data.sinusoid import SinusoidTasks


class SinusoidMLP(nn.Module):
    """``(n, 1) -> (n, 1)`` regressor with two hidden ReLU layers of ``hidden`` units."""

    def __init__(self, hidden: int = 40):
        super().__init__()
        self.hidden = hidden
        self.layers = nn.ModuleList([nn.Linear(1, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 1)])

    def forward(self, x: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
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


def meta_train(k_shot: int = 10, iterations: int = 10_000, meta_batch: int = 25, inner_lr: float = 0.01,
               lr: float = 1e-3, seed: int = 0) -> tuple[SinusoidMLP, list[float]]:
    """Second-order MAML (one inner step) on sinusoid tasks; returns the model and its query losses."""
    torch.manual_seed(seed)
    model, tasks = SinusoidMLP(), SinusoidTasks(seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(iterations):
        grads, loss = meta_gradient(model, tasks.sample(meta_batch, k_shot, k_shot), inner_lr)
        for k, p in model.named_parameters():
            p.grad = grads[k]
        opt.step()
        losses.append(loss.item())
    return model, losses


def pretrain(iterations: int = 10_000, meta_batch: int = 25, n_points: int = 10, lr: float = 1e-3,
             seed: int = 0) -> tuple[SinusoidMLP, list[float]]:
    """The baseline: regress points of all tasks with one network (plain MSE, Adam)."""
    torch.manual_seed(seed)
    model, tasks = SinusoidMLP(), SinusoidTasks(seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(iterations):
        ep = tasks.sample(meta_batch, n_points, 1)
        loss = F.mse_loss(model(ep.support_x), ep.support_y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, losses


def load_or_train(path=None, iterations: int = 5_000, seed: int = 0) -> tuple[dict, dict]:
    """MAML for K = 5 and K = 10 and the pretrained baseline, from ``path`` if present, else trained and saved.

    Returns:
        ``({"maml_k5": model, "maml_k10": model, "pretrained": model}, record)`` where the record
        holds the seed, iterations and training seconds of each model.
    """
    from ..io import atomic_torch_save, load_checkpoint
    from ..pretrained import CHECKPOINT_DIR

    path = CHECKPOINT_DIR / "sinusoid-quick.pt" if path is None else path
    if path.exists():
        ckpt = load_checkpoint(path)
        models = {}
        for name, state in ckpt["state_dicts"].items():
            models[name] = SinusoidMLP()
            models[name].load_state_dict(state)
        return models, ckpt["record"]
    models, record = {}, {"seed": seed, "iterations": iterations, "train_seconds": {}}
    for name, fn in (("maml_k5", lambda: meta_train(5, iterations, seed=seed)),
                     ("maml_k10", lambda: meta_train(10, iterations, seed=seed)),
                     ("pretrained", lambda: pretrain(iterations, seed=seed))):
        start = time.perf_counter()
        models[name], _ = fn()
        record["train_seconds"][name] = time.perf_counter() - start
    atomic_torch_save({"state_dicts": {k: m.state_dict() for k, m in models.items()}, "record": record}, path)
    return models, record
