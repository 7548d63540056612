"""Exercises of ``notebooks/03_relation_based.ipynb``: the learned adjacency of a few-shot graph network."""
from __future__ import annotations

import torch

from ..methods.gnn import edge_weights
from .core import exercise


def _adjacency_cases():
    g = torch.Generator().manual_seed(303)
    cases = [(torch.randn(b, n, n, generator=g) * scale,) for b, n, scale in ((1, 2, 1.0), (3, 6, 1.0), (2, 11, 5.0))]
    big = torch.randn(1, 5, 5, generator=g)
    big.diagonal(dim1=1, dim2=2).fill_(50.0)  # a node that scores itself highest must still not be its own neighbour
    cases.append((big,))
    cases.append((torch.zeros(2, 4, 4),))  # equal scores: each node spreads 1/(M-1) over the others
    return cases


@exercise("gnn_adjacency", "edge scores (B, M, M) -> adjacency: softmax over each node's neighbours, no self-edge",
          _adjacency_cases)
def gnn_adjacency_reference(scores: torch.Tensor) -> torch.Tensor:
    """The package's :func:`fslcourse.methods.gnn.edge_weights`."""
    return edge_weights(scores)
