"""A graph neural network few-shot classifier: the drawings of an episode are the nodes of a graph with learned edges.

Taught in ``notebooks/03_relation_based.ipynb`` (the relation-based family).

Garcia & Bruna (2018), "Few-Shot Learning with Graph Neural Networks", arXiv:1711.04043.
Each query :math:`\\hat x` gets a graph of its own with :math:`M` = ``n_way * n_shot + 1`` nodes: node :math:`i`
starts as :math:`h_i^{(0)} = [f(x_i), e(y_i)]`, the backbone embedding and the one-hot code of the
label (all zeros for the query, whose label is unknown). A layer first *learns the edges*,

.. math:: A_{ij} = \\operatorname{softmax}_{j \\ne i}\\, \\phi\\big(\\lvert h_i - h_j \\rvert\\big),

an MLP :math:`\\phi` of the absolute difference, normalised over each node's neighbours, and then
updates every node from itself and its neighbours' mean, keeping the old features (dense connections):

.. math:: h^{(l+1)} = \\big[h^{(l)},\\; \\rho\\big(\\mathrm{BN}(W_l\\,[h^{(l)}, A h^{(l)}])\\big)\\big].

After two such layers a last adjacency and graph convolution, batch-normalised and without the nonlinearity,
:math:`\\mathrm{BN}(W_\\text{out}[h, A h])`, give ``n_way`` scores per node; the query node's are the
logits. Labels travel along the learned edges, so the network can compare a query with every support
drawing *and* the support drawings with one another.

Departures from the paper (said so in the recipes): the backbone is the course's Conv-4
(:mod:`fslcourse.models.conv4`) instead of the paper's Omniglot embedding, and the edge MLP has no
batch norm, so at test time (running statistics) each query's graph is computed on its own; in training
the graph layers' batch norm pools the nodes of all the episode's graphs, as the backbone's does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import make_backbone
from ..recipe import Recipe
from .base import FewShotClassifier, register


def edge_weights(scores: torch.Tensor) -> torch.Tensor:
    """Edge scores to an adjacency: a softmax over each node's neighbours, the node itself left out.

    Args:
        scores: ``(B, M, M)`` scores, ``scores[b, i, j]`` for the edge from node ``i`` to node ``j``.

    Returns:
        ``(B, M, M)`` weights: every row sums to 1 over ``j != i``, the diagonal is 0.
    """
    eye = torch.eye(scores.shape[-1], dtype=torch.bool, device=scores.device)
    return torch.softmax(scores.masked_fill(eye, float("-inf")), dim=-1)


class EdgeModel(nn.Module):
    """The learned adjacency: ``A[b, i, j] = softmax_j φ(|h_i - h_j|)`` with the self-edge left out."""

    def __init__(self, in_features: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_features, 2 * hidden), nn.LeakyReLU(0.01),
                                 nn.Linear(2 * hidden, hidden), nn.LeakyReLU(0.01), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Args: ``h`` ``(B, M, F)`` node features. Returns ``(B, M, M)`` rows that sum to 1, zero diagonal."""
        diff = (h[:, :, None] - h[:, None]).abs()  # (B, M, 1, F) - (B, 1, M, F) -> (B, M, M, F)
        return edge_weights(self.mlp(diff).squeeze(-1))  # (B, M, M, 1) -> (B, M, M)


class GraphConv(nn.Module):
    """One graph convolution: ``BN(W [h, A h])`` for every node (the identity and the learned operator)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(2 * in_features, out_features)
        self.norm = nn.BatchNorm1d(out_features)

    def forward(self, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """Args: ``h`` ``(B, M, F)``, ``adjacency`` ``(B, M, M)``. Returns ``(B, M, out_features)``."""
        out = self.linear(torch.cat([h, adjacency @ h], dim=-1))  # (B, M, 2F) -> (B, M, out)
        return self.norm(out.flatten(0, 1)).view_as(out)  # (B * M, out) for BatchNorm1d, then back


@register("gnn")
class GNN(FewShotClassifier):
    """Few-shot GNN (Garcia & Bruna 2018, arXiv:1711.04043) on a Conv-4 backbone.

    Args:
        n_way: classes per episode; fixed, as the label code and the output layer have ``n_way`` entries.
        backbone, backbone_kwargs: the embedding network (:func:`fslcourse.models.make_backbone`).
        node_features: features each graph layer adds to a node (48 in the paper's Omniglot network).
        layers: graph layers before the output layer (2 in the paper).
    """

    def __init__(self, n_way: int = 5, backbone: str = "conv4", backbone_kwargs: dict | None = None,
                 node_features: int = 48, layers: int = 2):
        super().__init__()
        if n_way < 2 or node_features < 1 or layers < 1:
            raise ValueError(f"n_way={n_way}, node_features={node_features}, layers={layers}: need n_way >= 2 "
                             "and positive node_features and layers")
        self.n_way, self.node_features, self.layers = n_way, node_features, layers
        self.backbone_name, self.backbone_kwargs = backbone, dict(backbone_kwargs or {})
        self.backbone = make_backbone(backbone, **self.backbone_kwargs)
        width = self.backbone.out_dim + n_way
        self.edges, self.convs = nn.ModuleList(), nn.ModuleList()
        for _ in range(layers):
            self.edges.append(EdgeModel(width, node_features))
            self.convs.append(GraphConv(width, node_features))
            width += node_features
        self.edge_out, self.conv_out = EdgeModel(width, node_features), GraphConv(width, n_way)

    def graphs(self, z_support: torch.Tensor, support_y: torch.Tensor, z_query: torch.Tensor) -> torch.Tensor:
        """One graph per query: its node first, then the support nodes.

        Args:
            z_support: ``(n_way * n_shot, D)`` support embeddings; ``support_y`` ``(n_way * n_shot,)``.
            z_query: ``(n_query_total, D)`` query embeddings.

        Returns:
            ``(n_query_total, 1 + n_way * n_shot, D + n_way)`` node features ``[f(x), e(y)]``.
        """
        n_q, n_s = len(z_query), len(z_support)
        codes = F.one_hot(support_y, self.n_way).to(z_support.dtype)  # (n_s, n_way)
        support = torch.cat([z_support, codes], dim=1)  # (n_s, D + n_way)
        query = torch.cat([z_query, z_query.new_zeros(n_q, self.n_way)], dim=1)  # (n_q, D + n_way): label unknown
        return torch.cat([query[:, None], support[None].expand(n_q, n_s, -1)], dim=1)  # (n_q, 1 + n_s, D + n_way)

    def forward_graphs(self, h: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        """Run the graph layers on ``h`` ``(B, M, F0)``; returns the ``(B, M, n_way)`` node scores.

        ``keep``: a list that receives each layer's ``(B, M, M)`` adjacency (for the notebook's figure).
        """
        for edge, conv in zip(self.edges, self.convs):
            adjacency = edge(h)
            h = torch.cat([h, F.leaky_relu(conv(h, adjacency), 0.01)], dim=-1)  # dense: (B, M, F + node_features)
            if keep is not None:
                keep.append(adjacency)
        adjacency = self.edge_out(h)
        if keep is not None:
            keep.append(adjacency)
        return self.conv_out(h, adjacency)

    def predict(self, support_x, support_y, query_x):
        """Logits of every query from its own graph.

        Args:
            support_x: ``(n_way * n_shot, C, H, W)``; support_y: ``(n_way * n_shot,)`` in ``0 .. n_way-1``.
            query_x: ``(n_query_total, C, H, W)``.

        Returns:
            ``(n_query_total, n_way)`` logits (the query node's scores).
        """
        n_way = self.check_support(support_x, support_y, query_x)
        if n_way != self.n_way:
            raise ValueError(f"the support set has n_way={n_way} but this GNN was built for n_way={self.n_way} "
                             f"(its label code and output layer); train one with GNN(n_way={n_way})")
        z = self.backbone(torch.cat([support_x, query_x]))  # (n_s + n_q, D)
        h = self.graphs(z[: len(support_x)], support_y, z[len(support_x):])
        return self.forward_graphs(h)[:, 0]  # (n_q, M, n_way) -> the query node's (n_q, n_way)

    def config(self) -> dict:
        return {"n_way": self.n_way, "backbone": self.backbone_name, "backbone_kwargs": self.backbone_kwargs,
                "node_features": self.node_features, "layers": self.layers}

    # quick: 5-way 1-shot episodes (the output layer is 5-way) for a few CPU minutes, 32 filters.
    # full/paper: the paper's Omniglot 5-way 1-shot setting, smaller: Adam 1e-3 halved every 10,000 steps, 64 filters
    # (the paper embeds with its own Conv-4 variant), 50 one-query graphs per step for 50,000 steps (its code's
    # command: 300 graphs per step for 100,000).
    RECIPES = {
        "quick": Recipe(n_way=5, n_shot=1, n_query=5, meta_batch=2, lr=1e-3, steps=2000, schedule="cosine",
                        schedule_kwargs={"floor": 0.05}, val_every=200, val_episodes=100,
                        model={"n_way": 5, "backbone_kwargs": {"hidden": 32}},
                        note="5-way 1-shot, 32 filters, a few CPU minutes"),
        "full": Recipe(n_way=5, n_shot=1, n_query=2, meta_batch=5, lr=1e-3, steps=50_000, schedule="step",
                       schedule_kwargs={"every": 10_000, "gamma": 0.5}, val_every=1000, val_episodes=600,
                       model={"n_way": 5, "backbone_kwargs": {"hidden": 64}},
                       note="Garcia & Bruna 2018, Omniglot 5-way 1-shot; the course's Conv-4 backbone; 50 graphs per step "
                            "for 50,000 steps (its code's command: 300 for 100,000)"),
    }
    RECIPES["paper"] = RECIPES["full"]
