"""Exercises of ``notebooks/02_protonet.ipynb``."""
from __future__ import annotations

import torch

from ..methods.base import prototypes
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


def _loss_cases():
    g = torch.Generator().manual_seed(2018)
    cases = []
    for n_way, n_shot, n_query, dim in ((3, 2, 4, 5), (5, 1, 3, 8), (4, 3, 2, 6)):
        support_y = torch.arange(n_way).repeat_interleave(n_shot)
        order = torch.randperm(len(support_y), generator=g)  # support sets are not always sorted by class
        query_y = torch.randint(0, n_way, (n_way * n_query,), generator=g)
        cases.append((torch.randn(len(support_y), dim, generator=g), support_y[order],
                      torch.randn(len(query_y), dim, generator=g), query_y, n_way))
    return cases


@exercise("protonet_loss", "ProtoNet's loss: prototypes by label from the support set, softmax over the classes of "
          "each query's negative squared distances, cross-entropy on the queries", _loss_cases)
def protonet_loss_reference(z_support, support_y, z_query, query_y, n_way: int) -> torch.Tensor:
    """Mean cross-entropy of ``(n_query_total, D)`` query embeddings against prototypes of ``(n_support, D)``."""
    logits = protonet_logits(z_query, prototypes(z_support, support_y, n_way))  # (n_query_total, n_way)
    return torch.nn.functional.cross_entropy(logits, query_y)
