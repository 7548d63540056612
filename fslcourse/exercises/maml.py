"""Exercises of ``notebooks/05_maml.ipynb``: MAML's inner loop."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .core import exercise


def mlp_forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """A 1-hidden-layer tanh regressor given as a list ``[w1, b1, w2, b2]``: ``(n, 1) -> (n, 1)``."""
    w1, b1, w2, b2 = params
    return torch.tanh(x @ w1 + b1) @ w2 + b2


def _mlp_params(hidden: int, g: torch.Generator) -> list[torch.Tensor]:
    """Initial weights ``θ = [w1 (1, hidden), b1 (hidden,), w2 (hidden, 1), b2 (1,)]`` of :func:`mlp_forward`."""
    return [(torch.randn(1, hidden, generator=g) * 0.5).requires_grad_(), torch.zeros(hidden).requires_grad_(),
            (torch.randn(hidden, 1, generator=g) * 0.5).requires_grad_(), torch.zeros(1).requires_grad_()]


def _inner_loop_cases():
    g = torch.Generator().manual_seed(404)
    cases = []
    for hidden, n, lr, steps in ((3, 5, 0.1, 1), (8, 10, 0.05, 3), (16, 5, 0.01, 5)):
        params = _mlp_params(hidden, g)
        x = torch.rand(n, 1, generator=g) * 10 - 5
        cases.append((mlp_forward, params, x, 2.0 * torch.sin(x - 0.5), lr, steps))
    return cases


def _keeps_the_graph(fn) -> str | None:
    """MAML's meta-gradient flows through the inner gradients: the student's must equal the reference's."""
    forward, params, x, y, lr, steps = _inner_loop_cases()[1]
    before = [p.detach().clone() for p in params]
    adapted = fn(forward, params, x, y, lr, steps)
    if any(not torch.equal(p.detach(), b) for p, b in zip(params, before)):
        return ("θ changed during your call: an in-place update (p.sub_, p -= ..., p.data) overwrites θ and cuts the "
                "path from θ to φ; build each adapted weight as a new tensor computed from θ instead")
    if not all(torch.is_tensor(a) and a.requires_grad for a in adapted):
        return ("your adapted weights carry no graph back to θ (they do not require grad): build them from θ with "
                "torch operations, and pass create_graph=True to torch.autograd.grad")
    query = torch.linspace(-5, 5, 7)[:, None]
    want = torch.autograd.grad(F.mse_loss(forward(inner_loop_reference(forward, params, x, y, lr, steps), query),
                                          torch.sin(query)), params)
    got = torch.autograd.grad(F.mse_loss(forward(adapted, query), torch.sin(query)), params, allow_unused=True)
    if any(g is None or not torch.allclose(g, w, atol=1e-5, rtol=1e-4) for g, w in zip(got, want)):
        return ("the meta-gradient through your adapted weights misses the second-order term: the inner gradients "
                "must stay in the graph (create_graph=True), or you have written first-order MAML")
    return None


@exercise("maml_inner_loop", "a few gradient steps on the support MSE, keeping the graph", _inner_loop_cases,
          concept=_keeps_the_graph)
def inner_loop_reference(forward, params: list[torch.Tensor], support_x: torch.Tensor, support_y: torch.Tensor,
                         inner_lr: float, steps: int) -> list[torch.Tensor]:
    """MAML's inner loop: ``steps`` steps of ``φ ← φ − α ∇_φ MSE(forward(φ, support_x), support_y)`` from ``φ = θ``.

    Args:
        forward: ``forward(params, x) -> (n, 1)``.
        params: the initial weights ``θ`` (tensors with ``requires_grad=True``).
        support_x, support_y: ``(K, 1)`` support points.
        inner_lr: ``α``.
        steps: number of inner steps.

    Returns:
        The adapted weights, still differentiable w.r.t. ``θ`` (``create_graph=True``).
    """
    for _ in range(steps):
        loss = F.mse_loss(forward(params, support_x), support_y)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        params = [p - inner_lr * g for p, g in zip(params, grads)]
    return list(params)


def _meta_gradient_cases():
    g = torch.Generator().manual_seed(2017)
    cases = []
    for hidden, n_tasks, k, lr, steps in ((4, 2, 5, 0.1, 1), (8, 3, 10, 0.05, 2), (16, 4, 5, 0.02, 3)):
        params = _mlp_params(hidden, g)
        tasks = []
        for _ in range(n_tasks):
            amplitude, phase = 0.1 + 4.9 * torch.rand(1, generator=g), torch.pi * torch.rand(1, generator=g)
            x = torch.rand(2 * k, 1, generator=g) * 10 - 5  # (2K, 1): K support points, then K query points
            y = amplitude * torch.sin(x - phase)
            tasks.append((x[:k], y[:k], x[k:], y[k:]))
        cases.append((mlp_forward, params, tasks, lr, steps))
    return cases


def _diagnose_meta_gradient(fn) -> str | None:
    """Name the tutorial's mistakes: θ changed in place, no query loss, or a first-order meta-gradient."""
    forward, params, tasks, lr, steps = _meta_gradient_cases()[1]
    before = [p.detach().clone() for p in params]
    try:
        got = fn(forward, params, tasks, lr, steps)
    except Exception:  # e.g. autograd refusing a θ stepped in place: the cause is named below
        got = None
    if any(not torch.equal(p.detach(), b) for p, b in zip(params, before)):
        return ("θ changed during your call: adapt a copy φ = θ − α∇L_support(θ) for each task and leave θ itself for "
                "the outer update (an optimizer step inside the inner loop fine-tunes θ on one task after another)")
    if got is None:
        return None
    moved = [(sx, sy, qx, qy + 1.0) for sx, sy, qx, qy in tasks]
    params = [b.clone().requires_grad_() for b in before]
    if all(torch.allclose(a, b) for a, b in zip(got, fn(forward, params, moved, lr, steps))):
        return ("your meta-gradient does not depend on the query set: MAML scores the adapted φ on each task's "
                "queries, so that θ is trained to adapt well, not to fit the support sets")
    first = []
    for sx, sy, qx, qy in tasks:
        phi = params
        for _ in range(steps):
            grads = torch.autograd.grad(F.mse_loss(forward(phi, sx), sy), phi)
            phi = [p - lr * g for p, g in zip(phi, grads)]
        first.append(torch.autograd.grad(F.mse_loss(forward(phi, qx), qy), params, allow_unused=True))
    first = [sum(g[i] for g in first) / len(tasks) for i in range(len(params))]
    if all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(got, first)):
        return "this is first-order MAML: keep the inner gradients in the graph (create_graph=True)"
    return None


@exercise("maml_meta_gradient", "MAML's meta-gradient: adapt a copy of θ on each support set, score it on the "
          "task's queries, average over the tasks, θ unchanged", _meta_gradient_cases, diagnose=_diagnose_meta_gradient)
def meta_gradient_reference(forward, params: list[torch.Tensor], tasks, inner_lr: float,
                            steps: int) -> list[torch.Tensor]:
    """``∇_θ (1/B) Σ_b MSE(forward(φ_b, query_x_b), query_y_b)`` with ``φ_b`` the inner loop's weights on task ``b``.

    Finn, Abbeel & Levine (2017), arXiv:1703.03400, Algorithm 2 (the gradient its outer step uses).

    Args:
        forward: ``forward(params, x) -> (n, 1)``.
        params: ``θ``, tensors with ``requires_grad=True``; left unchanged.
        tasks: ``[(support_x, support_y, query_x, query_y), ...]``, each ``(K, 1)``.
        inner_lr, steps: the inner loop's ``α`` and number of steps.

    Returns:
        One gradient tensor per parameter, shaped like it.
    """
    losses = [F.mse_loss(forward(inner_loop_reference(forward, params, sx, sy, inner_lr, steps), qx), qy)
              for sx, sy, qx, qy in tasks]
    return list(torch.autograd.grad(torch.stack(losses).mean(), params))  # (n_tasks,) -> scalar
