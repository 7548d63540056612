"""Exercises of ``notebooks/08_gan_augmentation.ipynb``: WGAN-GP's gradient penalty."""
from __future__ import annotations

import torch
from torch import nn

from ..generative.gan import gradient_penalty
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


@exercise("gan_gradient_penalty", "WGAN-GP: mean over examples of (||grad_xhat D(xhat)||_2 - 1)^2 at "
          "xhat = eps * real + (1 - eps) * fake", _penalty_cases)
def penalty_reference(critic, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The scalar gradient penalty for critic inputs ``(n, ...)`` and weights ``eps`` ``(n,)``."""
    return gradient_penalty(critic, real, fake, eps)
