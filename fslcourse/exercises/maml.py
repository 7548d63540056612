"""Exercises of ``notebooks/05_maml.ipynb``: MAML's inner loop."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .core import exercise


def mlp_forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """A 1-hidden-layer tanh regressor given as a list ``[w1, b1, w2, b2]``: ``(n, 1) -> (n, 1)``."""
    w1, b1, w2, b2 = params
    return torch.tanh(x @ w1 + b1) @ w2 + b2


def _inner_loop_cases():
    g = torch.Generator().manual_seed(404)
    cases = []
    for hidden, n, lr, steps in ((3, 5, 0.1, 1), (8, 10, 0.05, 3), (16, 5, 0.01, 5)):
        params = [(torch.randn(1, hidden, generator=g) * 0.5).requires_grad_(),
                  torch.zeros(hidden).requires_grad_(),
                  (torch.randn(hidden, 1, generator=g) * 0.5).requires_grad_(),
                  torch.zeros(1).requires_grad_()]
        x = torch.rand(n, 1, generator=g) * 10 - 5
        cases.append((mlp_forward, params, x, 2.0 * torch.sin(x - 0.5), lr, steps))
    return cases


def _keeps_the_graph(fn) -> str | None:
    """MAML's meta-gradient flows through the inner gradients: the student's must equal the reference's."""
    forward, params, x, y, lr, steps = _inner_loop_cases()[1]
    adapted = fn(forward, params, x, y, lr, steps)
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


@exercise("maml_inner_loop", "K gradient steps on the support MSE, keeping the graph", _inner_loop_cases,
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
