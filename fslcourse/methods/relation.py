"""The Relation Network: a learned module scores how well a query matches each class.

Taught in ``notebooks/03_relation_based.ipynb`` (the relation-based family).

Sung, Yang, Zhang, Xiang, Torr & Hospedales (2018), "Learning to Compare: Relation
Network for Few-Shot Learning", arXiv:1711.06025. An embedding module :math:`f`
keeps spatial feature maps (no final pooling). The class feature is the sum of its
support maps, :math:`c_k = \\sum_{y_i = k} f(x_i)`; it is concatenated with each
query map along the channels and a *learned* relation module :math:`g` (two conv
blocks, then two fully connected layers and a sigmoid) gives the relation score
:math:`r_{k}(\\hat x) = g([c_k, f(\\hat x)]) \\in [0, 1]`. Training regresses the
scores onto the one-hot labels with a mean squared error (as in the paper).

For 28×28 Omniglot (the paper's layout): the embedding is four 3×3 conv blocks,
the first two unpadded with 2×2 max-pooling and the last two padded without,
28 → 26 → 13 → 11 → 5, so maps are ``(hidden, 5, 5)``; the relation module's two
padded conv blocks with pooling take 5 → 2 → 1. ``aggregate="mean"`` (our quick
default) averages instead of summing, so one model serves 1-shot and 5-shot.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..recipe import Recipe
from .base import FewShotClassifier, check_episode, check_query_y, n_shot_refusal, prototypes, register


def _block(c_in: int, c_out: int, padding: int, pool: bool) -> nn.Sequential:
    """3×3 conv, BatchNorm, ReLU, and optionally a 2×2 max-pool."""
    layers = [nn.Conv2d(c_in, c_out, 3, padding=padding), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))


@register("relation")
class RelationNet(FewShotClassifier):
    """Relation Network (Sung et al. 2018, arXiv:1711.06025).

    Args:
        hidden: channels of every conv layer (64 in the paper).
        relation_hidden: width of the relation module's first FC layer (8 in the paper).
        aggregate: ``"sum"`` (the paper) or ``"mean"`` of a class's support feature maps.
    """

    outputs = "scores"  # predict returns relation scores in [0, 1], not logits
    # "pooled": the support set and the queries go through the embedding in one batch (the course's training and
    # test); "separate": in two, as the paper's code does. Only batch statistics tell them apart (BatchStatistics:
    # benchmarks/relation_bn_passes.py measures both); with the running statistics every image is embedded alone.
    EMBED_PASSES = ("pooled", "separate")
    embed_passes = "pooled"

    def __init__(self, hidden: int = 64, relation_hidden: int = 8, aggregate: str = "sum"):
        super().__init__()
        if aggregate not in ("sum", "mean"):
            raise ValueError(f"aggregate={aggregate!r} is not known; use 'sum' (the paper) or 'mean'")
        self.hidden, self.relation_hidden, self.aggregate = hidden, relation_hidden, aggregate
        self.backbone = nn.Sequential(_block(1, hidden, 0, True), _block(hidden, hidden, 0, True),
                                      _block(hidden, hidden, 1, False), _block(hidden, hidden, 1, False))
        self.relation = nn.Sequential(_block(2 * hidden, hidden, 1, True), _block(hidden, hidden, 1, True),
                                      nn.Flatten(), nn.Linear(hidden, relation_hidden), nn.ReLU(inplace=True),
                                      nn.Linear(relation_hidden, 1), nn.Sigmoid())

    def relation_scores(self, class_maps: torch.Tensor, query_maps: torch.Tensor) -> torch.Tensor:
        """Score every (query, class) pair with the relation module.

        Args:
            class_maps: ``(n_way, hidden, h, w)`` class feature maps.
            query_maps: ``(n_query_total, hidden, h, w)`` query feature maps.

        Returns:
            ``(n_query_total, n_way)`` relation scores in ``[0, 1]``.
        """
        n_q, n_way = len(query_maps), len(class_maps)
        pairs = torch.cat([class_maps[None].expand(n_q, -1, -1, -1, -1),
                           query_maps[:, None].expand(-1, n_way, -1, -1, -1)], dim=2)  # (n_q, n_way, 2*hidden, h, w)
        pairs = pairs.flatten(0, 1)  # (n_q * n_way, 2*hidden, h, w)
        return self.relation(pairs).view(n_q, n_way)  # (n_q * n_way, 1) -> (n_q, n_way)

    def predict(self, support_x, support_y, query_x):
        """Relation scores of every query against every class (the argmax is the prediction).

        Args:
            support_x: ``(n_way * n_shot, C, H, W)`` support images.
            support_y: ``(n_way * n_shot,)`` labels in ``0 .. n_way-1``.
            query_x: ``(n_query_total, C, H, W)`` query images.

        Returns:
            ``(n_query_total, n_way)`` scores in ``[0, 1]`` (used as logits for the argmax).
        """
        n_way = self.check_support(support_x, support_y, query_x)
        counts = torch.bincount(support_y)  # (n_way,): support examples per class
        why = n_shot_refusal(self, int(counts.max())) or n_shot_refusal(self, int(counts.min()))
        if why:
            raise ValueError(why)
        if self.embed_passes not in self.EMBED_PASSES:
            raise ValueError(f"embed_passes={self.embed_passes!r} is not known; use one of {self.EMBED_PASSES}")
        if self.embed_passes == "separate":  # each pass normalised with its own batch statistics (the paper's code)
            s_maps, q_maps = self.backbone(support_x), self.backbone(query_x)  # (n_support, ...), (n_query_total, ...)
        else:
            maps = self.backbone(torch.cat([support_x, query_x]))  # (n_support + n_query_total, hidden, h, w)
            s_maps, q_maps = maps[: len(support_x)], maps[len(support_x):]
        class_maps = prototypes(s_maps.flatten(1), support_y, n_way)  # (n_way, hidden*h*w): class means
        if self.aggregate == "sum":
            class_maps = class_maps * torch.bincount(support_y, minlength=n_way)[:, None].to(s_maps.dtype)
        class_maps = class_maps.view(n_way, *s_maps.shape[1:])  # (n_way, hidden, h, w)
        return self.relation_scores(class_maps, q_maps)

    @property
    def shot_dependent(self) -> bool:
        """Summed support maps grow with ``n_shot``: such a model runs only at the ``n_shot`` it was trained with
        (:func:`~fslcourse.methods.base.fixed_n_shot`; ``predict`` refuses other ``n_shot`` once loaded)."""
        return self.aggregate == "sum"

    def loss(self, episode) -> tuple[torch.Tensor, torch.Tensor]:
        """MSE between the relation scores and the one-hot query labels (the paper's loss), and accuracy."""
        check_episode(episode)
        scores = self.predict(episode.support_x, episode.support_y, episode.query_x)
        check_query_y(episode.query_y, scores)
        target = F.one_hot(episode.query_y, scores.shape[1]).to(scores.dtype)  # (n_query_total, n_way)
        return F.mse_loss(scores, target), (scores.argmax(dim=1) == episode.query_y).float().mean()

    def config(self) -> dict:
        return {"hidden": self.hidden, "relation_hidden": self.relation_hidden, "aggregate": self.aggregate}

    # quick: a fixed step budget of about 3-4 minutes on one CPU thread; full: the paper's 64 channels,
    # sum aggregation and 5-way 1-shot 19-query episodes (Adam 1e-3; 1,000,000 episodes in the paper).
    RECIPES = {
        "quick": Recipe(n_way=20, n_shot=1, n_query=3, lr=2e-3, steps=1500, schedule="cosine",
                        schedule_kwargs={"floor": 0.05}, val_every=100, val_episodes=100,
                        model={"hidden": 32, "aggregate": "mean"}),
        "full": Recipe(n_way=5, n_shot=1, n_query=19, lr=1e-3, steps=100_000, schedule="cosine",
                       schedule_kwargs={"floor": 0.05}, val_every=1000, val_episodes=600,
                       model={"hidden": 64, "aggregate": "sum"}),
    }
    # the paper's code never switches its networks to eval mode, so BatchNorm tests with each batch's statistics
    # (transductive); benchmarks/course_benchmark.py --profile paper measures that way too, as relation-batch-stats.
    # One departure, in training and at test: predict embeds the support set and the queries in one batch, so their
    # BatchNorm statistics are pooled; the paper's code embeds them in two passes, each with its own statistics
    paper_test_batch_norm = "batch"
    RECIPES["paper"] = RECIPES["full"].replace(  # full keeps the course's alphabet split
        options={"split": "vinyals"}, note="Sung et al. 2018 (arXiv:1711.06025), Omniglot 5-way 1-shot, 19 queries, on "
        "the Vinyals et al. split; 100,000 episodes (the paper: 1,000,000); the rate decays (cosine, to 5%) and gradients "
        "are not clipped (its code: a constant 1e-3 over these episodes, gradient norms clipped at 0.5); the support set "
        "and the queries share one BatchNorm batch (its code embeds them in two passes, each with its own statistics)")
    RECIPES["paper-20way"] = RECIPES["paper"].replace(  # its code's README: -w 20 -s 1 -b 10
        n_way=20, n_query=10, val_n_way=20, note="Sung et al. 2018 (arXiv:1711.06025), Omniglot 20-way 1-shot, 10 "
        "queries, on the Vinyals et al. split; 100,000 episodes (the paper: 1,000,000); the rate decays (cosine, to 5%) "
        "and gradients are not clipped (its code: a constant 1e-3 over these episodes, gradient norms clipped at 0.5); the "
        "support set and the queries share one BatchNorm batch (its code embeds them in two passes, each with its own "
        "statistics)")
