"""Exercises of ``notebooks/06_vae_augmentation.ipynb``."""
from __future__ import annotations

import torch

from ..generative.vae import kl_to_standard_normal
from .core import exercise


def _kl_cases():
    g = torch.Generator().manual_seed(1312)
    cases = [(torch.zeros(1, 2), torch.zeros(1, 2))]  # q = p: KL is 0
    for n, z_dim, spread in ((3, 2, 1.0), (16, 8, 2.0), (5, 32, 0.1)):
        cases.append((spread * torch.randn(n, z_dim, generator=g), spread * torch.randn(n, z_dim, generator=g)))
    return cases


@exercise("vae_kl", "closed-form KL(N(mu, diag exp(logvar)) || N(0, I)), one value per example", _kl_cases)
def kl_reference(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``(n,)`` KL divergences for ``(n, z_dim)`` means and log-variances."""
    return kl_to_standard_normal(mu, logvar)
