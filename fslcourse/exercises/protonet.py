"""Exercises of ``notebooks/02_protonet.ipynb``."""
from __future__ import annotations

import torch

from ..methods.protonet import protonet_logits
from .core import exercise


def _logit_cases():
    g = torch.Generator().manual_seed(2017)
    return [(torch.randn(n_query, dim, generator=g), torch.randn(n_way, dim, generator=g), scale)
            for n_query, n_way, dim, scale in ((1, 2, 3, 1.0), (10, 5, 64, 10.0), (7, 20, 16, 4.0))]


@exercise("protonet_cosine_logits", "scaled cosine-similarity logits of queries against prototypes", _logit_cases)
def cosine_logits_reference(query: torch.Tensor, protos: torch.Tensor, scale: float) -> torch.Tensor:
    """``(n_query, n_way)`` logits ``scale * cos(query_i, protos_k)`` for ``(n_query, D)`` and ``(n_way, D)``."""
    return protonet_logits(query, protos, "cosine", scale)
