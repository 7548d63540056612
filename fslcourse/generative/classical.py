"""Two generators without learning, the controls of every augmentation table: deformations and copies with noise.

Taught in ``notebooks/07_vae_augmentation.ipynb``.

A learned generator is worth something only if it beats what needs no training at all.

* :class:`Deformation` is classical data augmentation for handwriting: a random affine map
  (rotation, scale, shear, shift) composed with an elastic deformation, a random displacement
  field smoothed by a Gaussian of width :math:`\\sigma` and scaled by :math:`\\alpha` (Simard,
  Steinkraus & Platt 2003, "Best practices for convolutional neural networks applied to visual
  document analysis", ICDAR; no arXiv version). Every sample is the support drawing itself, moved: it is always the
  right character.
* :class:`CopyNoise` copies a support drawing and adds faint Gaussian pixel noise (std 0.05 by
  default, which the classifier still recognises as the drawing): a "generator" that adds no new
  information at all. If a learned generator helps no more than this, its samples are not what
  helped. (Stronger noise is not neutral: at std 0.2 the embedding of a noisy copy leaves its class.)

Both follow the :class:`~fslcourse.generative.augment.SupportGenerator` protocol (pixel space).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .augment import check_request, seeded, sources_in_turn


def gaussian_blur(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """Smooth ``(n, C, H, W)`` with a normalised Gaussian of std ``sigma`` pixels (separable, zero padding)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=field.dtype, device=field.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = field.shape[1]
    field = F.conv2d(field, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius), groups=c)  # kernel (c, 1, 1, 2r+1): along W
    return F.conv2d(field, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius, 0), groups=c)  # kernel (c, 1, 2r+1, 1): along H


class Deformation:
    """Random affine and elastic deformations of the support drawings (Simard et al. 2003).

    Args:
        rotation: maximum rotation in degrees (uniform in ``±rotation``).
        scale: maximum relative change of size (uniform in ``1 ± scale``).
        shear: maximum shear (uniform in ``±shear``).
        shift: maximum shift as a fraction of the image side.
        alpha: strength of the elastic field, in pixels.
        sigma: smoothness of the elastic field, in pixels (the paper's σ).
    """

    space = "pixel"
    source = None  # nothing trained, no checkpoint

    def __init__(self, rotation: float = 10.0, scale: float = 0.1, shear: float = 0.15, shift: float = 0.06,
                 alpha: float = 2.0, sigma: float = 3.0):
        if sigma <= 0 or alpha < 0:
            raise ValueError(f"sigma={sigma} must be > 0 and alpha={alpha} >= 0 (pixels)")
        self.rotation, self.scale, self.shear, self.shift, self.alpha, self.sigma = (
            rotation, scale, shear, shift, alpha, sigma)

    def generate(self, support_x, support_y, n_per_class: int, seed: int):
        """``(generated (n_way * m, C, H, W) in [0, 1], labels (n_way * m,))``, class-major; noise seeded by ``seed``."""
        check_request(support_x, support_y, n_per_class)
        x, labels = sources_in_turn(support_x, support_y, n_per_class)
        return self.deform(x, seeded(seed)), labels

    def deform(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Each image of ``x`` ``(n, C, H, W)``, deformed at random (drawn from ``g``); ``(n, C, H, W)`` in [0, 1].

        Also the training augmentation of a recipe with ``options={"augment": {...}}``.
        """
        n, _, h, w = x.shape

        def uniform(bound):
            return (2 * torch.rand(n, generator=g) - 1) * bound  # (n,) in [-bound, bound]

        angle, size, shear = uniform(math.radians(self.rotation)), 1 + uniform(self.scale), uniform(self.shear)
        cos, sin = torch.cos(angle) / size, torch.sin(angle) / size
        theta = torch.stack([torch.stack([cos, -sin + shear, 2 * uniform(self.shift)], 1),
                             torch.stack([sin, cos, 2 * uniform(self.shift)], 1)], 1)  # (n, 2, 3): output -> input
        grid = F.affine_grid(theta, (n, 1, h, w), align_corners=False)  # (n, H, W, 2) in [-1, 1]
        field = gaussian_blur(2 * torch.rand(n, 2, h, w, generator=g) - 1, self.sigma)  # (n, 2, H, W)
        field = field / field.flatten(1).abs().amax(1).clamp_min(1e-8)[:, None, None, None]  # (n, 2*H*W) -> (n, 1, 1, 1): peak 1 per image
        pixels = torch.tensor([2 / w, 2 / h])  # one pixel in grid units, (x, y)
        grid = grid + self.alpha * field.permute(0, 2, 3, 1) * pixels  # (n, 2, H, W) -> (n, H, W, 2)
        out = F.grid_sample(x.cpu(), grid, align_corners=False, padding_mode="zeros")
        return out.clamp(0, 1).to(x)


class CopyNoise:
    """Copies of the support drawings plus Gaussian pixel noise of std ``noise``, clipped to ``[0, 1]``.

    Args:
        noise: the noise's standard deviation in pixel units (the images are in ``[0, 1]``).
    """

    space = "pixel"
    source = None

    def __init__(self, noise: float = 0.05):
        if noise < 0:
            raise ValueError(f"noise={noise} must be >= 0")
        self.noise = noise

    def generate(self, support_x, support_y, n_per_class: int, seed: int):
        """``(generated (n_way * m, C, H, W) in [0, 1], labels (n_way * m,))``, class-major; noise seeded by ``seed``."""
        check_request(support_x, support_y, n_per_class)
        x, labels = sources_in_turn(support_x, support_y, n_per_class)
        eps = torch.randn(x.shape, generator=seeded(seed)).to(x)
        return (x + self.noise * eps).clamp(0, 1), labels


# the untrained controls by name (no weights, no checkpoint family): what the augmentation benchmarks measure
# beside every learned generator; a new control joins here
CONTROLS = {"deformation": Deformation, "copy-noise": CopyNoise}
