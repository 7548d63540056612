"""The DAGAN paper's own networks: a UResNet generator and a densely connected pair critic.

Antoniou, Storkey & Edwards (2017), "Data Augmentation Generative Adversarial Networks",
arXiv:1711.04340, section 4 and its Omniglot code: both players are built of *levels*; inside a
level every convolution sees the concatenation of the level's input and all earlier outputs of the
level (dense connections, Huang et al. 2017, arXiv:1608.06993), and a strided (encoder) or
nearest-upsampling (decoder) convolution moves to the next resolution. The generator is a U-Net
(Ronneberger et al. 2015, arXiv:1505.04597): the decoder concatenates the encoder's map of each
resolution, the noise ``z`` projected to a small map at the three coarsest resolutions, and at the
end the source drawing itself. Generator units are convolution, leaky ReLU, batch norm (dropout
after each change of resolution); the critic uses layer norm instead, because WGAN-GP's gradient
penalty is per example. Images are 28 x 28, resolutions 28 -> 14 -> 7 -> 4 -> 2 and back.

Taught in ``notebooks/08_gan_augmentation.ipynb`` (the paper's own networks, beside the course's small GAN).
"""
from __future__ import annotations

import torch
from torch import nn

from .gan import PairGenerator

SIZES = (14, 7, 4, 2)  # the encoder's resolutions after each level (28 x 28 input)
Z_CHANNELS = (8, 4, 2)  # channels of z's map at the decoder's three coarsest resolutions, as in the paper's code


def unit(c_in: int, c_out: int, norm: str, stride: int = 1, dropout: float = 0.0) -> nn.Sequential:
    """3x3 convolution, leaky ReLU (0.2), then ``"batch"`` or ``"layer"`` norm, then optional dropout."""
    layers = [nn.Conv2d(c_in, c_out, 3, stride, 1), nn.LeakyReLU(0.2),
              nn.BatchNorm2d(c_out, momentum=0.01) if norm == "batch" else nn.GroupNorm(1, c_out)]
    return nn.Sequential(*layers, *([nn.Dropout(dropout)] if dropout else []))


class DenseLevel(nn.Module):
    """``n`` units, each on the concatenation of the input and every earlier unit's output.

    ``forward``: ``(b, c_in, H, W)`` -> ``(b, c_in + n * width, H, W)``; ``out_channels`` says how many.
    """

    def __init__(self, c_in: int, width: int, n: int, norm: str):
        super().__init__()
        self.units = nn.ModuleList(unit(c_in + i * width, width, norm) for i in range(n))
        self.out_channels = c_in + n * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = [x]
        for u in self.units:
            maps.append(u(torch.cat(maps, 1)))
        return torch.cat(maps, 1)


class UResNetGenerator(PairGenerator):
    """``G(x_s, z)``: a new ``(n, 1, 28, 28)`` drawing of the class of each source drawing (the paper's generator).

    Args:
        widths: feature maps of the four levels (the paper: ``(64, 64, 128, 128)``).
        inner: dense units inside each level after the first (the paper: 3).
        z_dim: noise dimension (the paper: 100).
        dropout: after each change of resolution (the paper: 0.5); off in :meth:`generate` (eval mode).
    """

    def __init__(self, widths=(64, 64, 128, 128), inner: int = 3, z_dim: int = 100, dropout: float = 0.5):
        super().__init__()
        self.widths, self.inner, self.z_dim, self.dropout = tuple(widths), inner, z_dim, dropout
        w = self.widths
        self.stem = unit(1, w[0], "batch", stride=2)  # 28 -> 14
        self.down_dense, self.down = nn.ModuleList(), nn.ModuleList()
        for i in range(1, 4):  # 14 -> 7 -> 4 -> 2
            self.down_dense.append(DenseLevel(w[i - 1], w[i], inner, "batch"))
            self.down.append(unit(self.down_dense[-1].out_channels, w[i], "batch", stride=2, dropout=dropout))
        self.z_maps = nn.ModuleList(nn.Linear(z_dim, c * s * s) for c, s in zip(Z_CHANNELS, SIZES[::-1]))
        self.up_dense, self.up = nn.ModuleList(), nn.ModuleList()
        c = w[3]
        for level in range(4):  # at 2, 4, 7, 14; each upsamples to the next (4, 7, 14, 28)
            idx = 3 - level
            c += Z_CHANNELS[level] if level < 3 else 0
            self.up_dense.append(DenseLevel(c, w[idx], inner, "batch"))
            self.up.append(unit(self.up_dense[-1].out_channels, w[idx], "batch", dropout=dropout))
            c = w[idx] + (w[idx - 1] if idx else 1)  # after the skip: the encoder's map (or the source at 28)
        self.head = nn.Sequential(unit(c, w[0], "batch"), unit(w[0], w[0], "batch"), nn.Conv2d(w[0], 1, 3, 1, 1))

    def forward(self, source: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``source`` ``(n, 1, 28, 28)`` in ``[0, 1]`` and ``z`` ``(n, z_dim)`` -> ``(n, 1, 28, 28)`` in ``[0, 1]``."""
        signed = 2 * source - 1  # (n, 1, 28, 28): the paper's images are in [-1, 1]
        skips = [self.stem(signed)]  # [(n, w0, 14, 14)]
        for dense, down in zip(self.down_dense, self.down):
            skips.append(down(dense(skips[-1])))  # (n, w_i, 7 | 4 | 2, ...)
        x = skips.pop()  # (n, w3, 2, 2)
        targets = [s.shape[-1] for s in skips[::-1]] + [28]  # 4, 7, 14, 28
        for level, (dense, up) in enumerate(zip(self.up_dense, self.up)):
            if level < 3:
                s = x.shape[-1]
                x = torch.cat([x, self.z_maps[level](z).view(len(z), Z_CHANNELS[level], s, s)], 1)  # (n, c+z_c, s, s)
            x = up(nn.functional.interpolate(dense(x), size=targets[level], mode="nearest"))  # (n, w, 2s or so, ...)
            x = torch.cat([x, skips.pop() if skips else signed], 1)  # the skip of this resolution
        return torch.sigmoid(self.head(x))  # (n, 1, 28, 28)

    def config(self) -> dict:
        return {"widths": list(self.widths), "inner": self.inner, "z_dim": self.z_dim, "dropout": self.dropout}


class DenseCritic(nn.Module):
    """``D(x_s, x)``: one score per ``(n, 2, 28, 28)`` pair (source and candidate as channels); higher means real.

    The paper's discriminator: a strided stem, three dense levels each ending in a strided unit, then
    a linear score of the last map and of a 1024-unit layer on its spatial mean.

    Args:
        widths: feature maps of the four levels (the paper: ``(64, 64, 128, 128)``).
        inner: dense units inside each level after the first (the paper: 5).
    """

    def __init__(self, widths=(64, 64, 128, 128), inner: int = 5, dense_units: int = 1024):
        super().__init__()
        self.widths, self.inner, self.dense_units = tuple(widths), inner, dense_units
        w = self.widths
        levels = [unit(2, w[0], "layer", stride=2)]  # 28 -> 14
        for i in range(1, 4):  # 14 -> 7 -> 4 -> 2
            dense = DenseLevel(w[i - 1], w[i], inner, "layer")
            levels += [dense, unit(dense.out_channels, w[i], "layer", stride=2)]
        self.body = nn.Sequential(*levels)
        self.global_features = nn.Sequential(nn.Linear(w[3], dense_units), nn.LeakyReLU(0.2))
        self.score = nn.Linear(dense_units + w[3] * 4, 1)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        """``pair`` ``(n, 2, 28, 28)`` in ``[0, 1]`` -> ``(n,)`` scores."""
        h = self.body(2 * pair - 1)  # (n, w3, 2, 2)
        features = torch.cat([self.global_features(h.mean((2, 3))), h.flatten(1)], 1)  # (n, 1024 + w3 * 4)
        return self.score(features).squeeze(1)  # (n, 1) -> (n,)

    def config(self) -> dict:
        return {"widths": list(self.widths), "inner": self.inner, "dense_units": self.dense_units}
