"""Exercises of ``notebooks/08_gan_augmentation.ipynb``: WGAN-GP's gradient penalty, the critic's mismatched pairs."""
from __future__ import annotations

import torch
from torch import nn

from ..generative.gan import gradient_penalty, make_pair
from .core import exercise


def _penalty_cases():
    g = torch.Generator().manual_seed(707)
    cases = []
    linear = nn.Linear(6, 1)  # D(x) = w.x + b: the gradient is w everywhere, the penalty (||w|| - 1)^2
    with torch.no_grad():
        linear.weight.copy_(torch.randn(1, 6, generator=g))
    cases.append((lambda x: linear(x).squeeze(1), torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g),
                  torch.rand(4, generator=g)))
    torch.manual_seed(707)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 5, 8), nn.Tanh(), nn.Linear(8, 1))  # a curved critic
    for n in (3, 8):
        cases.append((lambda x: mlp(x).squeeze(1), torch.rand(n, 2, 5, 5, generator=g),
                      torch.rand(n, 2, 5, 5, generator=g), torch.rand(n, generator=g)))
    cases.append((lambda x: mlp(x).squeeze(1), torch.rand(2, 2, 5, 5, generator=g),
                  torch.rand(2, 2, 5, 5, generator=g), torch.tensor([0.0, 1.0])))  # the end points
    return cases


def _penalty_trains_the_critic(fn) -> str | None:
    """The penalty is a loss of the critic: it must backpropagate into the critic's weights, as the reference's does."""
    g = torch.Generator().manual_seed(708)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 5, 8), nn.Tanh(), nn.Linear(8, 1))  # a curved critic
    with torch.no_grad():
        for p in mlp.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
    params = list(mlp.parameters())

    def critic(x):
        return mlp(x).squeeze(1)

    real, fake, eps = torch.rand(4, 2, 5, 5, generator=g), torch.rand(4, 2, 5, 5, generator=g), torch.rand(4, generator=g)
    got = fn(critic, real, fake, eps)
    if not (torch.is_tensor(got) and got.requires_grad):
        return ("your penalty does not depend on the critic's weights (it carries no graph): the gradient "
                "∇_x̂ D(x̂) must itself be differentiable, so pass create_graph=True to torch.autograd.grad")
    params = params[:-1]  # the last bias shifts D, not its gradient: the penalty never depends on it
    want = torch.autograd.grad(penalty_reference(critic, real, fake, eps), params)
    mine = torch.autograd.grad(got, params, allow_unused=True)
    if any(g is None or not torch.allclose(g, w, atol=1e-5, rtol=1e-4) for g, w in zip(mine, want)):
        return ("the penalty's gradient with respect to the critic's weights is wrong: keep ∇_x̂ D(x̂) in the "
                "graph (create_graph=True) so training the critic pushes its gradient norm towards 1")
    return None


@exercise("gan_gradient_penalty", "WGAN-GP: mean over examples of (||grad_xhat D(xhat)||_2 - 1)^2 at "
          "xhat = eps * real + (1 - eps) * fake", _penalty_cases, concept=_penalty_trains_the_critic)
def penalty_reference(critic, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The scalar gradient penalty for critic inputs ``(n, ...)`` and weights ``eps`` ``(n,)``."""
    return gradient_penalty(critic, real, fake, eps)


def _pairs_cases():
    g = torch.Generator().manual_seed(709)
    return [(torch.rand(n, 1, 28, 28, generator=g), torch.rand(n, 1, 28, 28, generator=g)) for n in (2, 3, 8)]


@exercise("critic_pairs", "the critic's pairs: (source, its partner) is real; (source, another character's "
          "partner) is fake, each source paired with the previous source's partner", _pairs_cases)
def critic_pairs_reference(source: torch.Tensor, partner: torch.Tensor):
    """``source``, ``partner``: ``(n, 1, 28, 28)``, drawing ``i`` of each of character ``i``. Returns ``(real, mismatched)``,
    both ``(n, 2, 28, 28)``: ``real[i]`` pairs source ``i`` with partner ``i``, ``mismatched[i]`` with partner ``i - 1``
    (the first with the last), as :meth:`~fslcourse.generative.gan.DAGAN.train_step` shows the critic."""
    return make_pair(source, partner), make_pair(source, partner.roll(1, 0))
