"""The Conv-4 backbone of Prototypical Networks, MAML and Matching Networks.

Taught in ``notebooks/02_protonet.ipynb``; ``notebooks/04_finetune_baseline.ipynb``
and the MAML notebook reuse it.

Four blocks of [3×3 convolution with ``hidden`` filters, BatchNorm, ReLU, 2×2
max-pool] (Vinyals et al. 2016, arXiv:1606.04080; Snell et al. 2017,
arXiv:1703.05175). A 28×28 image shrinks 28 → 14 → 7 → 3 → 1, so the output is
a ``hidden``-dimensional vector (64 with the papers' width).
"""
from __future__ import annotations

import torch
from torch import nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """One block: 3×3 conv (padding 1), BatchNorm, ReLU, 2×2 max-pool (halves H and W)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class Conv4(nn.Module):
    """Four conv blocks then flatten: ``(n, C, 28, 28) -> (n, hidden)``.

    Args:
        in_channels: image channels (1 for Omniglot).
        hidden: filters in every block (64 in the papers).
        depth: number of blocks (4 in the papers).

    Attributes:
        out_dim: length of the embedding for a 28×28 input.
    """

    def __init__(self, in_channels: int = 1, hidden: int = 64, depth: int = 4):
        super().__init__()
        if hidden <= 0 or depth <= 0:
            raise ValueError(f"hidden={hidden} and depth={depth} must be positive integers")
        self.in_channels, self.hidden, self.depth = in_channels, hidden, depth
        self.blocks = nn.Sequential(*[conv_block(in_channels if i == 0 else hidden, hidden) for i in range(depth)])
        side = 28 // 2 ** depth  # every max-pool halves the side, rounding down: 28 -> 14 -> 7 -> 3 -> 1
        self.out_dim = hidden * side * side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed images.

        Args:
            x: ``(n, C, H, W)`` images.

        Returns:
            ``(n, hidden * h * w)`` embeddings (``(n, hidden)`` for 28×28 and depth 4).
        """
        if x.dim() != 4:
            raise ValueError(f"x must be (n, C, H, W), got shape {tuple(x.shape)}; add a batch dimension")
        return self.blocks(x).flatten(1)  # (n, hidden, h, w) -> (n, hidden * h * w)

    def config(self) -> dict:
        """Constructor arguments (saved with the method's config)."""
        return {"in_channels": self.in_channels, "hidden": self.hidden, "depth": self.depth}
