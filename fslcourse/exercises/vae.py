"""Exercises of ``notebooks/07_vae_augmentation.ipynb``."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..generative.vae import kl_to_standard_normal
from ..generative.weighted_prototypes import weighted_prototypes
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


def _weighted_cases():
    g = torch.Generator().manual_seed(606)
    cases = []
    for n_way, k, m, weight in ((3, 1, 5, 0.25), (4, 2, 3, 0.5), (2, 5, 10, 2.0), (5, 1, 1, 0.0)):
        z_real, z_gen = torch.randn(n_way * k, 8, generator=g), 3 + torch.randn(n_way * m, 8, generator=g)
        y_real, y_gen = torch.arange(n_way).repeat_interleave(k), torch.arange(n_way).repeat_interleave(m)
        cases.append((z_real, y_real, z_gen, y_gen, n_way, weight))
    keep = torch.tensor([False, False, True, True, True, False])  # class 0 lost all its samples to rejection
    z_real, y_real = torch.randn(3, 4, generator=g), torch.arange(3)
    z_gen, y_gen = torch.randn(6, 4, generator=g), torch.arange(3).repeat_interleave(2)
    cases.append((z_real, y_real, z_gen[keep], y_gen[keep], 3, 0.5))
    return cases


@exercise("weighted_prototypes", "prototypes with generated examples weighted by lambda: (sum real + lambda sum "
          "generated) / (K + lambda m) per class", _weighted_cases)
def weighted_prototypes_reference(z_real, y_real, z_gen, y_gen, n_way, weight):
    """``(n_way, D)`` prototypes of real and generated embeddings, the generated ones weighted by ``weight``."""
    return weighted_prototypes(z_real, y_real, z_gen, y_gen, n_way, weight)


def _displace_cases():
    g = torch.Generator().manual_seed(1313)
    cases = []
    for n, size, strength in ((1, 28, 0.0), (3, 28, 0.1), (2, 12, 0.3)):
        source = (torch.rand(n, 1, size, size, generator=g) > 0.7).float()
        field = torch.zeros(n, 2, size, size)
        field[:, 0] = strength  # a horizontal shift of the whole drawing in one case...
        field[:, 1] = strength * torch.randn(n, size, size, generator=g)  # ...and a noisy vertical field on top
        cases.append((source, field))
    return cases


def _zero_field_is_the_identity(fn) -> str | None:
    """Run when a value differs: every deformation of the deformation VAE starts from the identity, so a zero field
    must return the drawing; name that concept if it does not."""
    source = (torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1314)) > 0.7).float()
    got = fn(source, torch.zeros(2, 2, 28, 28))
    if not (torch.is_tensor(got) and got.shape == source.shape and torch.allclose(got, source, atol=1e-5)):
        return ("a zero field does not give back the drawing: each output pixel must be read at its *own* "
                "position plus its displacement (start from the identity grid, in the same align_corners "
                "convention as the grid_sample that reads it)")
    return None


@exercise("displace", "a drawing under a displacement field: out(p) = source(p + u(p)) with grid_sample, "
          "field channel 0 horizontal, channel 1 vertical", _displace_cases, atol=1e-5,
          diagnose=_zero_field_is_the_identity)
def displace_reference(source: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """``source`` ``(n, 1, H, W)`` read at the identity grid plus ``field`` ``(n, 2, H, W)`` (``grid_sample``'s
    [-1, 1] coordinates, bilinear, ``align_corners=False``); returns ``(n, 1, H, W)``."""
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(len(source), 2, 3)  # (n, 2, 3)
    coords = F.affine_grid(identity, list(source.shape), align_corners=False)  # (n, H, W, 2): (x, y) per pixel
    return F.grid_sample(source, coords + field.permute(0, 2, 3, 1), align_corners=False)  # field: (n, H, W, 2)
