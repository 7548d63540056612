"""A small ResNet-style backbone sized for 28×28 Omniglot and a 2-core CPU.

Taught in ``notebooks/02_protonet.ipynb`` (as the alternative backbone) and frozen
by the meta-transfer learning (MTL) notebook.

Residual blocks as in He et al. 2016 (arXiv:1512.03385): two 3×3 convolutions
with BatchNorm, a 1×1 projection on the shortcut when the shape changes, then
ReLU; each stage ends with a 2×2 max-pool as in the few-shot ResNet-12
(Oreshkin et al. 2018, arXiv:1805.10123), but with three stages and narrow
widths so a quick-profile run fits on a CPU. Global average pooling gives a
vector of ``widths[-1]`` features.
"""
from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a (projected) shortcut, ReLU, then 2×2 max-pool."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = (nn.Identity() if in_channels == out_channels else nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)))
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, in_channels, H, W) -> (n, out_channels, H // 2, W // 2)``."""
        return self.pool(torch.relu(self.body(x) + self.shortcut(x)))


class ResNetSmall(nn.Module):
    """Three residual stages and global average pooling: ``(n, C, 28, 28) -> (n, widths[-1])``.

    Args:
        in_channels: image channels (1 for Omniglot).
        widths: output channels of each stage (28 → 14 → 7 → 3 spatially).

    Attributes:
        out_dim: length of the embedding (``widths[-1]``).
    """

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] | list[int] = (32, 64, 128)):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths or any(w <= 0 for w in widths):
            raise ValueError(f"widths={widths!r} must be a non-empty list of positive integers")
        self.in_channels, self.widths = in_channels, widths
        chans = (in_channels,) + widths
        self.stages = nn.Sequential(*[ResidualBlock(chans[i], chans[i + 1]) for i in range(len(widths))])
        self.out_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed images.

        Args:
            x: ``(n, C, H, W)`` images.

        Returns:
            ``(n, widths[-1])`` embeddings.
        """
        if x.dim() != 4:
            raise ValueError(f"x must be (n, C, H, W), got shape {tuple(x.shape)}; add a batch dimension")
        return self.stages(x).mean(dim=(2, 3))  # (n, widths[-1], h, w) -> (n, widths[-1])

    def config(self) -> dict:
        """Constructor arguments (saved with the method's config)."""
        return {"in_channels": self.in_channels, "widths": list(self.widths)}
