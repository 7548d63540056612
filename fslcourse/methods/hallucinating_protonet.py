"""A ProtoNet that learns to hallucinate: its generator is meta-trained *with* the classifier, for the few-shot loss.

Taught in ``notebooks/10_learning_to_generate.ipynb``; measured in ``notebooks/11_benchmark.ipynb`` beside ProtoNet, its matched baseline.

Wang, Girshick, Hebert & Hariharan (2018), "Low-Shot Learning from Imaginary Data",
arXiv:1801.05401. A hallucinator :math:`G(f, z)` maps a support embedding :math:`f` and noise
:math:`z` to a new embedding of the same class; the prototypes take the real embeddings and
:math:`m` hallucinated ones per class,

.. math:: c_k = \\frac{1}{K + m}\\Big(\\sum_{i \\in S_k} f_\\phi(x_i) + \\sum_{j=0}^{m-1} G\\big(f_\\phi(x_{k, j \\bmod K}), z_j\\big)\\Big),

and the only training signal is the queries' cross-entropy, back-propagated into both the backbone
:math:`\\phi` and the hallucinator. So :math:`G` is never asked to draw realistic examples, only useful
ones, and the embedding learns *with* its hallucinator (unlike :mod:`fslcourse.generative.hallucinator`,
trained afterwards on a frozen backbone). The recipe is ProtoNet's quick recipe unchanged (same episodes,
steps, schedule and seed), so the committed ``protonet`` checkpoint is the same classifier trained without
the hallucinator: the matched baseline.
"""
from __future__ import annotations

import torch

from .base import prototypes, register
from .protonet import ProtoNet, protonet_logits


@register("hallucinating-protonet")
class HallucinatingProtoNet(ProtoNet):
    """ProtoNet plus a feature hallucinator trained jointly (Wang et al. 2018, arXiv:1801.05401).

    Args:
        n_generated: m, hallucinated embeddings per class, in training and at test time.
        z_dim, hidden: the hallucinator's noise size and width.
        test_seed: seeds the test-time noise (each ``predict`` starts from it: the same episode always gets
            the same hallucinations). In training the noise comes from torch's global generator, which the
            training loop saves and restores, so runs resume bit for bit.
        backbone, backbone_kwargs, distance, scale: as for :class:`~fslcourse.methods.protonet.ProtoNet`.
    """

    def __init__(self, n_generated: int = 5, z_dim: int = 16, hidden: int = 128, test_seed: int = 0,
                 backbone: str = "conv4", backbone_kwargs: dict | None = None, distance: str = "euclidean",
                 scale: float = 10.0):
        super().__init__(backbone, backbone_kwargs, distance, scale)
        if isinstance(n_generated, bool) or not isinstance(n_generated, int) or n_generated < 0:
            raise ValueError(f"n_generated={n_generated!r} must be a whole number >= 0")
        self.n_generated, self.z_dim, self.hidden, self.test_seed = n_generated, z_dim, hidden, test_seed
        # imported here, not at the top: the generative package imports the evaluation code, which imports
        # this package while it registers its methods
        from ..generative.hallucinator import FeatureHallucinator

        self.hallucinator = FeatureHallucinator(self.backbone.out_dim, z_dim, hidden)

    def classify_embeddings(self, z_support, support_y, z_query):
        """Logits ``(n_query_total, n_way)`` against prototypes of the real and the hallucinated embeddings."""
        n_way = self.n_way_of(support_y)
        if self.n_generated:
            g = None if self.training else torch.Generator().manual_seed(self.test_seed)
            gen, gen_y = self.hallucinator.hallucinate(z_support, support_y, self.n_generated, g)
            z_support, support_y = torch.cat([z_support, gen]), torch.cat([support_y, gen_y])
        return protonet_logits(z_query, prototypes(z_support, support_y, n_way), self.distance, self.scale)

    def config(self) -> dict:
        return {**super().config(), "n_generated": self.n_generated, "z_dim": self.z_dim, "hidden": self.hidden,
                "test_seed": self.test_seed}

    RECIPES = {name: r.replace(model={"n_generated": 5}, note=r.note + "; with m = 5 hallucinated embeddings per class")
               for name, r in ProtoNet.RECIPES.items()}
