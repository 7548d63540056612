"""Prototypical Networks: classify a query by its distance to each class's mean embedding.

Taught in ``notebooks/02_protonet.ipynb``.

Snell, Swersky & Zemel (2017), "Prototypical Networks for Few-shot Learning",
arXiv:1703.05175. A backbone :math:`f_\\phi` embeds every image; the prototype of
class :math:`k` is the mean embedding of its support examples,
:math:`c_k = \\frac{1}{K}\\sum_{y_i = k} f_\\phi(x_i)`, and the logits of a query are
:math:`-\\lVert f_\\phi(x) - c_k \\rVert^2` (or a scaled cosine similarity). Training
minimises the query cross-entropy over episodes, with more classes per
training episode than at test time (60-way in the paper).
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from ..models import make_backbone
from ..recipe import Recipe
from .base import FewShotClassifier, prototypes, register

DISTANCES = ("euclidean", "cosine")


def protonet_logits(query: torch.Tensor, protos: torch.Tensor, distance: str = "euclidean",
                    scale: float | torch.Tensor = 10.0) -> torch.Tensor:
    """Logits of queries against prototypes.

    Args:
        query: ``(n_query_total, D)`` query embeddings.
        protos: ``(n_way, D)`` prototypes.
        distance: ``"euclidean"``: ``-||q - c||^2``; ``"cosine"``: ``scale * cos(q, c)``.
        scale: multiplies the cosine similarity (ignored for euclidean).

    Returns:
        ``(n_query_total, n_way)`` logits.
    """
    if distance == "euclidean":
        # ||q||^2 - 2 q.c + ||c||^2 as one matmul: exact and faster than cdist's backward
        sq = query.pow(2).sum(1, keepdim=True) - 2 * query @ protos.T + protos.pow(2).sum(1)[None]
        return -sq.clamp_min(0)  # (n_query_total, n_way)
    if distance == "cosine":
        return scale * F.normalize(query, dim=1) @ F.normalize(protos, dim=1).T
    raise ValueError(f"distance={distance!r} is not known; use one of {', '.join(DISTANCES)}")


@register("protonet")
class ProtoNet(FewShotClassifier):
    """Prototypical Networks (Snell et al. 2017, arXiv:1703.05175).

    Args:
        backbone: ``"conv4"`` (the paper's) or ``"resnet"`` (see :mod:`fslcourse.models`).
        backbone_kwargs: passed to the backbone, e.g. ``{"hidden": 64}``.
        distance: ``"euclidean"`` (squared, as in the paper) or ``"cosine"``.
        scale: cosine temperature (the paper's euclidean logits need none).
    """

    def __init__(self, backbone: str = "conv4", backbone_kwargs: dict | None = None,
                 distance: str = "euclidean", scale: float = 10.0):
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"distance={distance!r} is not known; use one of {', '.join(DISTANCES)}")
        self.backbone_name, self.backbone_kwargs = backbone, dict(backbone_kwargs or {})
        self.backbone = make_backbone(backbone, **self.backbone_kwargs)
        self.distance, self.scale = distance, float(scale)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, C, H, W) -> (n, D)`` embeddings."""
        return self.backbone(x)

    def predict(self, support_x, support_y, query_x):
        """Logits of the queries against the support set's prototypes.

        Args:
            support_x: ``(n_way * n_shot, C, H, W)`` support images.
            support_y: ``(n_way * n_shot,)`` labels in ``0 .. n_way-1``.
            query_x: ``(n_query_total, C, H, W)`` query images.

        Returns:
            ``(n_query_total, n_way)`` logits.
        """
        self.check_support(support_x, support_y, query_x)
        z = self.embed(torch.cat([support_x, query_x]))  # (n_support + n_query_total, D): one pass, shared BN stats
        return self.classify_embeddings(z[: len(support_x)], support_y, z[len(support_x):])

    def classify_embeddings(self, z_support, support_y, z_query):
        """Logits ``(n_query_total, n_way)`` of query embeddings against the prototypes of ``(n_support, D)`` ones."""
        protos = prototypes(z_support, support_y, self.n_way_of(support_y))  # (n_way, D)
        return protonet_logits(z_query, protos, self.distance, self.scale)

    def config(self) -> dict:
        return {"backbone": self.backbone_name, "backbone_kwargs": self.backbone_kwargs,
                "distance": self.distance, "scale": self.scale}

    # quick: a 2-core CPU in about 3 minutes; full: the paper's schedule (Snell et al. 2017, Section 3.1:
    # 60-way episodes, Adam 1e-3 halved every 2000 episodes), for a GPU; paper: the paper's Omniglot 1-shot
    # model on the papers' Vinyals split (60-way 1-shot, 5 queries per class, matching the test shot as the
    # paper does). The paper stops on meta-validation; we fix 20 000 steps (nine halvings of the learning rate)
    # and keep the best meta-validation step. Hours on one CPU thread: resumable (--resume).
    RECIPES = {
        "quick": Recipe(n_way=60, n_shot=1, n_query=1, lr=3e-3, steps=3000, schedule="cosine",
                        schedule_kwargs={"floor": 0.05}, val_every=50, val_episodes=100,
                        model={"backbone_kwargs": {"hidden": 32}},
                        note="Conv-4 with 32 filters; 60-way 1-shot 1-query episodes buy many steps on a CPU"),
        "full": Recipe(n_way=60, n_shot=5, n_query=5, lr=1e-3, steps=40_000, schedule="step",
                       schedule_kwargs={"every": 2000, "gamma": 0.5}, val_every=500, val_episodes=600,
                       model={"backbone_kwargs": {"hidden": 64}}, note="the paper's schedule"),
    }
    RECIPES["paper"] = Recipe(n_way=60, n_shot=1, n_query=5, lr=1e-3, steps=20_000, schedule="step",
                              schedule_kwargs={"every": 2000, "gamma": 0.5}, val_every=500, val_episodes=600,
                              model={"backbone_kwargs": {"hidden": 64}}, options={"split": "vinyals"},
                              note="Snell et al. 2017, Omniglot 1-shot, on the Vinyals et al. split")
    # lake: the course's best one-shot model for Lake et al.'s task (20-way 1-shot, all classes from one
    # alphabet; the alphabet split's background alphabets only). Departs from the paper on purpose: within-
    # alphabet 20-way training episodes, random affine + elastic deformations of every training image
    # (Simard et al. 2003), Conv-4 with 64 filters, a cosine schedule, and the checkpoint chosen on
    # within-alphabet 20-way meta-validation episodes. Hours on one CPU thread: resumable (--resume).
    RECIPES["lake"] = Recipe(n_way=20, n_shot=1, n_query=5, within_alphabet=True, lr=1e-3, steps=20_000,
                             schedule="cosine", schedule_kwargs={"floor": 0.02}, val_every=500, val_episodes=200,
                             val_n_way=20, val_within_alphabet=True, model={"backbone_kwargs": {"hidden": 64}},
                             options={"augment": {}},
                             note="Lake et al.'s within-alphabet 20-way 1-shot task: within-alphabet episodes, "
                                  "deformations, 64 filters")
    # The training ablation of the lake recipe: each removes one of its changes, at the same 20,000 steps.
    RECIPES["lake-no-augment"] = dataclasses.replace(
        RECIPES["lake"], options={}, note=RECIPES["lake"].note + "; without the deformations")
    RECIPES["lake-random-episodes"] = RECIPES["lake"].replace(
        within_alphabet=False, note=RECIPES["lake"].note + "; random 20-way training episodes (any alphabets)")
    RECIPES["lake-32"] = RECIPES["lake"].replace(
        model={"backbone_kwargs": {"hidden": 32}}, note=RECIPES["lake"].note + "; 32 filters")
    # a second lake model from another seed: the ensemble of the two is one of the test-time rows
    RECIPES["lake-seed1"] = RECIPES["lake"].replace(seed=1, note=RECIPES["lake"].note + "; seed 1")
    # shorter training: the lake recipe, its cosine schedule compressed into 3000 or 8000 steps
    RECIPES["lake-3000"] = RECIPES["lake"].replace(steps=3000, note=RECIPES["lake"].note + "; 3000 steps")
    RECIPES["lake-8000"] = RECIPES["lake"].replace(steps=8000, note=RECIPES["lake"].note + "; 8000 steps")
    # minimal / minimal-synthetic: the quick recipe meta-trained on Lake et al.'s "minimal" background set (the
    # five alphabets of images_background_small1, 136 characters), without and with 272 synthetic characters
    # made by recombining two real ones (fslcourse.generative.task_synthesis): does making tasks help when
    # meta-training data are scarce? A matched pair: same steps, episodes, schedule and seed.
    RECIPES["minimal"] = RECIPES["quick"].replace(
        options={"alphabets": ["Balinese", "Early_Aramaic", "Greek", "Korean", "Latin"]},
        note="the quick recipe on the five alphabets of images_background_small1")
    RECIPES["minimal-synthetic"] = RECIPES["minimal"].replace(
        options={"recombined": 272}, note=RECIPES["minimal"].note + ", plus 272 recombined synthetic characters")
