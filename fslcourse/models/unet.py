"""A small U-Net noise predictor for 28×28 images, with sinusoidal time embeddings and FiLM/AdaGN conditioning.

Taught in ``notebooks/09_diffusion_augmentation.ipynb`` (the network behind
:mod:`fslcourse.generative.diffusion`).

Ronneberger et al. (2015), "U-Net", arXiv:1505.04597, as used for diffusion by Ho et al.
(2020), arXiv:2006.11239: residual blocks at 28 → 14 → 7 and back, with skip connections.
The time step enters as a sinusoidal embedding (Vaswani et al. 2017, arXiv:1706.03762);
the class condition ``c`` (a prototype in a backbone's feature space) is embedded and added
to it, and the sum sets a per-channel scale and shift after each block's second GroupNorm
(FiLM: Perez et al. 2017, arXiv:1709.07871; adaptive GroupNorm: Dhariwal & Nichol 2021,
arXiv:2105.05233). A learned *null* embedding replaces ``c`` when it is dropped, which is what
classifier-free guidance needs (Ho & Salimans 2022, arXiv:2207.12598).
"""
from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0,
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Sinusoidal embedding ``[cos(t w_i), sin(t w_i)]`` with ``w_i = max_period^(-i / (dim/2))``.

    Args:
        t: ``(n,)`` time steps (integers or floats).
        dim: embedding size (even).
        dtype: of the result (the model's: float64 for round-off checks).

    Returns:
        ``(n, dim)``.
    """
    if dim % 2:
        raise ValueError(f"dim={dim} must be even; use an even embedding size")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=dtype) / half)
    args = t.to(dtype)[:, None] * freqs[None]  # (n, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # (n, dim)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the second GroupNorm modulated by the embedding: ``h * (1 + scale) + shift``."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, groups: int = 8):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``(n, in, H, W), (n, emb_dim) -> (n, out, H, W)``."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)  # (n, out, 1, 1) each
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class UNet(nn.Module):
    """ε_θ(x_t, t, c): a 28×28 U-Net predicting the noise in ``x_t``.

    Args:
        in_channels: image channels (1).
        channels: width at 28×28; ``2 * channels`` at 14×14 and ``4 * channels`` at 7×7.
        cond_dim: size of the condition ``c`` (the backbone's feature size).

    Forward:
        ``x`` ``(n, C, 28, 28)``, ``t`` ``(n,)`` integer steps, ``c`` ``(n, cond_dim)`` or ``None``
        (unconditional), ``drop`` ``(n,)`` bool: rows whose condition is replaced by the null embedding.
        Returns ``(n, C, 28, 28)``.
    """

    def __init__(self, in_channels: int = 1, channels: int = 32, cond_dim: int = 32):
        super().__init__()
        if isinstance(channels, bool) or not hasattr(channels, "__index__") or channels < 8 or channels % 8:
            raise ValueError(f"channels={channels!r}: the U-Net's group norms split channels into 8 groups; use a "
                             "multiple of 8 (16, 32, 64)")
        channels = operator.index(channels)  # a NumPy integer too: config() stays plain data
        self.in_channels, self.channels, self.cond_dim = in_channels, channels, cond_dim
        c1, c2, c3, emb = channels, 2 * channels, 4 * channels, 4 * channels
        self.time_mlp = nn.Sequential(nn.Linear(c1, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.cond_mlp = nn.Sequential(nn.LayerNorm(cond_dim), nn.Linear(cond_dim, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.null_cond = nn.Parameter(torch.zeros(emb))  # the embedding of "no condition"
        self.inp = nn.Conv2d(in_channels, c1, 3, padding=1)
        self.down1 = ResBlock(c1, c1, emb)
        self.pool1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)  # 28 -> 14
        self.down2 = ResBlock(c1, c2, emb)
        self.pool2 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)  # 14 -> 7
        self.mid = ResBlock(c2, c3, emb)
        self.up2 = ResBlock(c3 + c2, c2, emb)
        self.up1 = ResBlock(c2 + c1, c1, emb)
        self.out = nn.Sequential(nn.GroupNorm(8, c1), nn.SiLU(), nn.Conv2d(c1, in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def config(self) -> dict:
        """Constructor kwargs, so ``UNet(**config)`` rebuilds it."""
        return {"in_channels": self.in_channels, "channels": self.channels, "cond_dim": self.cond_dim}

    def embed(self, t: torch.Tensor, c: torch.Tensor | None, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Time plus condition embedding ``(n, 4 * channels)``; the null embedding where ``c`` is None or dropped."""
        e = self.time_mlp(timestep_embedding(t, self.channels, dtype=self.null_cond.dtype))  # (n, emb)
        if c is None:
            return e + self.null_cond
        ce = self.cond_mlp(c)  # (n, emb)
        if drop is not None:
            ce = torch.where(drop[:, None], self.null_cond.expand_as(ce), ce)  # (n, emb)
        return e + ce

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None,
                drop: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embed(t, c, drop)
        h1 = self.down1(self.inp(x), emb)  # (n, c1, 28, 28)
        h2 = self.down2(self.pool1(h1), emb)  # (n, c2, 14, 14)
        h = self.mid(self.pool2(h2), emb)  # (n, c3, 7, 7)
        h = F.interpolate(h, scale_factor=2, mode="nearest")  # (n, c3, 14, 14)
        h = self.up2(torch.cat([h, h2], 1), emb)  # (n, c3 + c2, 14, 14) -> (n, c2, 14, 14)
        h = F.interpolate(h, scale_factor=2, mode="nearest")  # (n, c2, 28, 28)
        h = self.up1(torch.cat([h, h1], 1), emb)  # (n, c2 + c1, 28, 28) -> (n, c1, 28, 28)
        return self.out(h)
