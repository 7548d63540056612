"""The Conv-4 classifier of MAML: a network written for functional (``params``) calls.

Taught in ``notebooks/05_maml.ipynb``.

Four blocks of [3×3 convolution, BatchNorm, ReLU] then a linear head, as in
Finn et al. 2017 (arXiv:1703.03400, Section 5.2). On Omniglot the paper uses
stride-2 convolutions instead of max-pooling (28 → 14 → 7 → 4 → 2), which is
also about four times cheaper. BatchNorm always uses the statistics of the
batch it sees (no running averages), in training *and* at test time, as in the
paper's code: predictions on a query set are made from the query batch's
statistics, i.e. transductively.

Three departures from the paper's code (cbfinn/maml), kept by every committed MAML checkpoint: the head
reads the flattened last map, 64 × 2 × 2 = 256 features, where that code averages it over its 2 × 2
positions (64 features; Reptile's code flattens, as here); BatchNorm learns a scale γ (that code's has
none); and the head starts from PyTorch's default initialisation (that code's from N(0, 1)).

``forward(x, params)`` takes an optional ``{name: tensor}`` dict (the names of
``named_parameters()``), so the MAML inner loop can run the same network with
adapted weights without copying modules. ``forward_tasks(x, params)`` runs a batch
of tasks, each with its own weights, as one network: the tasks' channels side by
side and grouped convolutions, so one autograd graph holds every task.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """BatchNorm with the batch's own statistics, written out with ``mean``/``var``.

    Equal to ``F.batch_norm(x, None, None, weight, bias, training=True)``, but its second
    derivatives are also right under ``torch.func`` transforms (with torch 2.14 the fused
    kernel's double backward under ``grad``/``vmap`` differs from autograd by ~1e-2;
    ``tests/methods/test_maml.py`` catches that). ``x``: ``(n, C, H, W)``.
    """
    mean = x.mean(dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)  # (1, C, 1, 1)
    return (x - mean) * torch.rsqrt(var + eps) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)  # weight, bias (C,) -> (1, C, 1, 1)


class MAMLConv4(nn.Module):
    """Conv-4 + linear head with batch-statistics BatchNorm: ``(n, C, 28, 28) -> (n, n_way)``.

    Args:
        n_way: outputs of the linear head.
        in_channels: image channels (1 for Omniglot).
        hidden: filters per convolution (64 in the paper).
        depth: number of conv blocks.
        stride: 2 for the paper's strided Omniglot network; 1 adds 2×2 max-pooling instead.
    """

    def __init__(self, n_way: int = 5, in_channels: int = 1, hidden: int = 64, depth: int = 4, stride: int = 2):
        super().__init__()
        if min(n_way, hidden, depth) <= 0 or stride not in (1, 2):
            raise ValueError(f"n_way={n_way}, hidden={hidden}, depth={depth} must be positive and "
                             f"stride={stride} must be 1 (max-pool) or 2 (strided)")
        self.n_way, self.hidden, self.depth, self.stride = n_way, hidden, depth, stride
        self.convs = nn.ModuleList(nn.Conv2d(in_channels if i == 0 else hidden, hidden, 3, stride, 1)
                                   for i in range(depth))
        self.norms = nn.ModuleList(nn.BatchNorm2d(hidden, track_running_stats=False) for _ in range(depth))
        # every block halves the side: a stride-2 convolution rounds up (28 -> 14 -> 7 -> 4 -> 2), a max-pool down
        side = -(-28 // 2 ** depth) if stride == 2 else 28 // 2 ** depth
        self.head = nn.Linear(hidden * side * side, n_way)

    def forward(self, x: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Logits for ``x`` of shape ``(n, C, H, W)`` with the module's weights or with ``params``.

        Returns:
            ``(n, n_way)`` logits.
        """
        p = params if params is not None else dict(self.named_parameters())
        for i in range(self.depth):
            x = F.conv2d(x, p[f"convs.{i}.weight"], p[f"convs.{i}.bias"], stride=self.stride, padding=1)
            x = batch_norm(x, p[f"norms.{i}.weight"], p[f"norms.{i}.bias"])
            x = F.relu(x)
            if self.stride == 1:
                x = F.max_pool2d(x, 2)
        return F.linear(x.flatten(1), p["head.weight"], p["head.bias"])  # flatten: (n, hidden*side*side)

    def forward_tasks(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits of ``B`` tasks at once, task ``b``'s images through task ``b``'s weights.

        The tasks' channels sit side by side, ``(n, B * C, H, W)``: a convolution with ``groups=B`` is each
        task's convolution, and BatchNorm over ``B * hidden`` channels is each task's own batch statistics.
        For plain autograd (its double backward is autograd's own); under ``torch.func``, use :meth:`forward`.

        Args:
            x: ``(B, n, C, H, W)``, the same ``n`` images per task.
            params: ``{name: (B, *param.shape)}``, one set of weights per task.

        Returns:
            ``(B, n, n_way)`` logits.
        """
        n_tasks, n = x.shape[:2]
        h = x.transpose(0, 1).reshape(n, -1, *x.shape[3:])  # (n, B*C, H, W)
        for i in range(self.depth):
            w = params[f"convs.{i}.weight"]
            h = F.conv2d(h, w.flatten(0, 1), params[f"convs.{i}.bias"].flatten(), stride=self.stride,
                         padding=1, groups=n_tasks)  # flatten: (B*hidden, C_in, 3, 3); h: (n, B*hidden, H', W')
            h = F.batch_norm(h, None, None, params[f"norms.{i}.weight"].flatten(), params[f"norms.{i}.bias"].flatten(),
                             training=True)  # weight, bias (B, hidden) -> (B*hidden,)
            h = F.relu(h)
            if self.stride == 1:
                h = F.max_pool2d(h, 2)
        features = h.reshape(n, n_tasks, -1).transpose(0, 1)  # (B, n, hidden*side*side)
        return torch.baddbmm(params["head.bias"].unsqueeze(1), features, params["head.weight"].transpose(1, 2))  # (B, n, n_way)
