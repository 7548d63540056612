"""Exercises of ``notebooks/02_protonet.ipynb``."""
from __future__ import annotations

import torch

from ..methods.base import prototypes
from ..methods.protonet import protonet_logits
from .core import exercise, matching_slip


def _logit_cases():
    g = torch.Generator().manual_seed(2017)
    return [(torch.randn(n_query_total, dim, generator=g), torch.randn(n_way, dim, generator=g), scale)
            for n_query_total, n_way, dim, scale in ((1, 2, 3, 1.0), (10, 5, 64, 10.0), (7, 20, 16, 4.0))]


@exercise("protonet_cosine_logits", "scaled cosine-similarity logits of queries against prototypes", _logit_cases)
def cosine_logits_reference(query: torch.Tensor, protos: torch.Tensor, scale: float) -> torch.Tensor:
    """``(n_query_total, n_way)`` logits ``scale * cos(query_i, protos_k)`` for ``(n_query_total, D)`` and ``(n_way, D)``."""
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


def _loss_with_slip(z_support, support_y, z_query, query_y, n_way, *, protos_from="support", by_label=True,
                    softmax_dim=1, squared=True, sign=-1.0):
    """The loss written out with one of the tutorial's bugs (notebook 02's "spot the bug") switched on."""
    z, y = (z_support, support_y) if protos_from == "support" else (z_query, query_y)
    if by_label:
        protos = prototypes(z, y, n_way)  # (n_way, D)
    else:  # assumes the batch sorted by class
        protos = z.reshape(n_way, -1, z.shape[-1]).mean(1)  # (n_way * n_shot, D) -> (n_way, n_shot, D) -> (n_way, D)
    d = ((z_query[:, None] - protos[None]) ** 2).sum(-1)  # (n_query_total, n_way)
    log_p = (sign * (d if squared else d.sqrt())).log_softmax(dim=softmax_dim)
    return -log_p[torch.arange(len(query_y)), query_y].mean()


def _diagnose_loss(fn) -> str | None:
    """Name the bugs the exercise asks about: a sorted-batch reshape, the softmax's axis, prototypes from the
    queries; and two slips of the formula (distances not squared, their sign)."""
    g = torch.Generator().manual_seed(5)
    n_way, n_shot, n_query = 4, 3, 2
    support_y = torch.arange(n_way).repeat_interleave(n_shot)[torch.randperm(n_way * n_shot, generator=g)]
    query_y = torch.arange(n_way).repeat_interleave(n_query)[torch.randperm(n_way * n_query, generator=g)]
    case = (torch.randn(len(support_y), 6, generator=g), support_y, torch.randn(len(query_y), 6, generator=g), query_y,
            n_way)
    got = fn(*case)
    slips = (({"by_label": False}, "your prototypes assume the support set is sorted by class (a reshape); the check "
                                   "shuffles it, so group the embeddings by their labels"),
             ({"softmax_dim": 0}, "your softmax normalises over the queries; a query's probabilities are over the "
                                  "classes"),
             ({"protos_from": "query"}, "your prototypes come from the query set: they are made from the support set, "
                                        "and the queries are classified against them"),
             ({"squared": False}, "your distances are not squared: the loss uses the squared Euclidean distance"),
             ({"sign": 1.0}, "a farther prototype gets a higher score: the logits are minus the distances"))
    return matching_slip(got, lambda **slip: _loss_with_slip(*case, **slip), slips)


@exercise("protonet_loss", "ProtoNet's loss: prototypes by label from the support set, softmax over the classes of "
          "each query's negative squared distances, cross-entropy on the queries", _loss_cases, diagnose=_diagnose_loss)
def protonet_loss_reference(z_support, support_y, z_query, query_y, n_way: int) -> torch.Tensor:
    """Mean cross-entropy of ``(n_query_total, D)`` query embeddings against prototypes of ``(n_support, D)``."""
    logits = protonet_logits(z_query, prototypes(z_support, support_y, n_way))  # (n_query_total, n_way)
    return torch.nn.functional.cross_entropy(logits, query_y)
