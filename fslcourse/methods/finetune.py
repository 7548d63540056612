"""The fine-tuning baseline: pre-train a classifier, then fit a new head on each support set.

Taught in ``notebooks/04_finetune_baseline.ipynb``.

Chen et al. (2019), "A Closer Look at Few-shot Classification", arXiv:1904.04232, and
Dhillon et al. (2020), "A Baseline for Few-Shot Image Classification", arXiv:1909.02729.
Three steps:

1. pre-train a backbone plus a linear layer on *all* meta-train classes with
   ordinary mini-batch cross-entropy (no episodes, no meta-learning);
2. per episode, freeze the backbone and build a new head on its features. Each
   trick can be switched off, so the notebook measures what it adds:
   ``init="mean"`` sets the weights to the class means (:math:`W = M, b = 0`),
   ``init="prototype"`` to the linear form of the Euclidean nearest prototype
   (:math:`W = 2M, b_k = -\\lVert c_k \\rVert^2`, notebook 02: the same argmax as ProtoNet),
   ``cosine=True`` uses logits :math:`s\\,\\cos(f(x), w_k) + b_k` with a learnable
   scale :math:`s`, and ``entropy_weight > 0`` adds the mean prediction entropy of
   the *query* images to the support cross-entropy (transductive);
3. predict the query labels with the fine-tuned head.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..models import make_backbone
from ..recipe import Recipe
from .base import FewShotClassifier, prototypes, register


def entropy_regulariser(logits: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy (nats) of the softmax of ``(n, n_way)`` logits; low = confident."""
    logp = F.log_softmax(logits, dim=1)  # (n, n_way)
    return -(logp.exp() * logp).sum(dim=1).mean()


def head_logits(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, log_scale: torch.Tensor,
                cosine: bool) -> torch.Tensor:
    """``(n, D)`` features -> ``(n, n_way)`` logits: ``s cos(f, w) + b`` or ``f W^T + b``.

    Args:
        features: ``(n, D)``; weight: ``(n_way, D)``; bias: ``(n_way,)``; log_scale: scalar, ``log s`` (cosine only).
        cosine: the cosine head ``s cos(f, w) + b``; else the linear one.
    """
    if cosine:
        return log_scale.exp() * F.normalize(features, dim=1) @ F.normalize(weight, dim=1).T + bias
    return features @ weight.T + bias


INITS = ("mean", "prototype", "random")


@register("finetune")
class FineTune(FewShotClassifier):
    """Pre-trained backbone + a head fine-tuned on each support set.

    Args:
        n_classes: classes of the pre-training head (the meta-train split's).
        backbone, backbone_kwargs: see :mod:`fslcourse.models`.
        steps: fine-tuning steps of the head per episode (0: use the initial head).
        lr: Adam learning rate of the head.
        init: ``"mean"`` (W = class means, b = 0), ``"prototype"`` (W = 2 x class means, b = -||c||^2: the
            Euclidean nearest prototype as a linear layer) or ``"random"`` (Kaiming-uniform, as nn.Linear).
        cosine: cosine logits with a learnable scale (else a plain linear layer).
        scale: initial cosine scale.
        entropy_weight: weight of the query-entropy term (0: not transductive).
        seed: seeds the random head initialisation.
    """

    needs_grad_at_test = True

    def __init__(self, n_classes: int = 64, backbone: str = "conv4", backbone_kwargs: dict | None = None,
                 steps: int = 50, lr: float = 0.01, init: str = "mean", cosine: bool = True,
                 scale: float = 10.0, entropy_weight: float = 0.0, seed: int = 0):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init={init!r} is not known; use one of {', '.join(map(repr, INITS))}")
        if steps < 0:
            raise ValueError(f"steps={steps} must be >= 0")
        if init == "prototype" and cosine:  # the bias -||c_k||^2 only makes sense beside a dot product
            raise ValueError("init='prototype' writes the Euclidean nearest prototype as a linear layer and needs "
                             "cosine=False; with cosine=True use init='mean'")
        self.backbone_name, self.backbone_kwargs = backbone, dict(backbone_kwargs or {})
        self.backbone = make_backbone(backbone, **self.backbone_kwargs)
        self.classifier = nn.Linear(self.backbone.out_dim, n_classes)  # pre-training head
        self.n_classes, self.steps, self.lr, self.init = n_classes, steps, lr, init
        self.cosine, self.scale, self.entropy_weight, self.seed = cosine, scale, entropy_weight, seed

    def config(self) -> dict:
        return {"n_classes": self.n_classes, "backbone": self.backbone_name,
                "backbone_kwargs": self.backbone_kwargs, "steps": self.steps, "lr": self.lr,
                "init": self.init, "cosine": self.cosine, "scale": self.scale,
                "entropy_weight": self.entropy_weight, "seed": self.seed}

    # Steps 2 and 3: a new head per episode -------------------------------------------------------
    def init_head(self, z_support: torch.Tensor, support_y: torch.Tensor, n_way: int):
        """``(weight (n_way, D), bias (n_way,), log_scale ())`` for the episode's head."""
        d = z_support.shape[1]
        bias = torch.zeros(n_way, dtype=z_support.dtype, device=z_support.device)
        if self.init == "mean":
            weight = prototypes(z_support, support_y, n_way)  # W = M
        elif self.init == "prototype":
            protos = prototypes(z_support, support_y, n_way)  # (n_way, D)
            # -||z - c||^2 = 2 c.z - ||c||^2 - ||z||^2, and ||z||^2 is the same for every class
            weight, bias = 2 * protos, -protos.pow(2).sum(1)
        else:
            g = torch.Generator().manual_seed(self.seed)
            bound = 1 / math.sqrt(d)
            weight = (torch.rand(n_way, d, generator=g) * 2 - 1).mul_(bound).to(z_support)
        log_scale = torch.tensor(math.log(self.scale), dtype=z_support.dtype, device=z_support.device)
        return weight, bias, log_scale

    def predict(self, support_x, support_y, query_x):
        """Fine-tune a head on the frozen support features, then return query logits.

        Args:
            support_x: ``(n_way * n_shot, C, H, W)``.
            support_y: ``(n_way * n_shot,)``.
            query_x: ``(n_query_total, C, H, W)``.

        Returns:
            ``(n_query_total, n_way)`` logits of the fine-tuned head.
        """
        self.check_support(support_x, support_y, query_x)
        with torch.no_grad():
            z = self.embed(torch.cat([support_x, query_x]))  # (n_support + n_query_total, D)
        return self.classify_embeddings(z[: len(support_x)], support_y, z[len(support_x):])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, C, H, W) -> (n, D)`` features of the pre-trained backbone."""
        return self.backbone(x)

    def classify_embeddings(self, z_support, support_y, z_query):
        """Fine-tune a new head on support features ``(n_support, D)``; logits ``(n_query_total, n_way)`` of ``z_query``."""
        z_support, z_query = z_support.detach(), z_query.detach()  # the backbone stays frozen
        params = [p.requires_grad_() for p in self.init_head(z_support, support_y, self.n_way_of(support_y))]
        if self.steps > 0:
            with torch.enable_grad():
                optimizer = torch.optim.Adam(params if self.cosine else params[:2], lr=self.lr)
                for _ in range(self.steps):
                    optimizer.zero_grad(set_to_none=True)
                    loss = F.cross_entropy(head_logits(z_support, *params, self.cosine), support_y)
                    if self.entropy_weight > 0:
                        loss = loss + self.entropy_weight * entropy_regulariser(
                            head_logits(z_query, *params, self.cosine))
                    loss.backward()
                    optimizer.step()
        return head_logits(z_query, *[p.detach() for p in params], self.cosine)

    # Step 1's recipes (the ``pretrain`` trainer): mini-batches of 128 classes × 2 images. quick: Conv-4
    # with 32 filters (as ProtoNet's quick recipe), Adam 2e-3 with a cosine decay; full: Conv-4 with
    # 64 filters, Adam 1e-3 halved every 20,000 of 60,000 steps (about 450 epochs of the meta-train
    # images). Validation: 5-way 1-shot with the mean-initialised cosine head and no fine-tuning (cheap).
    RECIPES = {
        "quick": Recipe(trainer="pretrain", n_way=128, n_shot=2, lr=2e-3, steps=2400, schedule="cosine",
                        schedule_kwargs={"floor": 0.05}, val_every=100, val_episodes=100,
                        model={"backbone_kwargs": {"hidden": 32}}, options={"val_settings": {"steps": 0}}),
        "full": Recipe(trainer="pretrain", n_way=128, n_shot=2, lr=1e-3, steps=60_000, schedule="step",
                       schedule_kwargs={"every": 20_000, "gamma": 0.5}, val_every=1000, val_episodes=100,
                       model={"backbone_kwargs": {"hidden": 64}}, options={"val_settings": {"steps": 0}}),
    }
    RECIPES["paper"] = RECIPES["full"].replace(note="the course's full recipe, not Chen et al. 2019's: their code "
                                                   "(wyharveychen/CloserLookFewShot) pre-trains on Omniglot for 5 "
                                                   "epochs (Adam 1e-3, batches of 16) and fits each episode's head "
                                                   "from a random start with SGD (0.01, momentum 0.9, weight decay "
                                                   "1e-3) for 100 epochs of batches of 4; the course's head starts at "
                                                   "the class means, cosine, 50 full-batch Adam steps")
