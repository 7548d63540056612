"""A feature-space hallucinator: new backbone features of a novel class from one real feature and noise.

Taught in ``notebooks/08_gan_augmentation.ipynb``.

Hariharan & Girshick (2017), "Low-shot Visual Recognition by Shrinking and Hallucinating
Features", arXiv:1606.02819, and Wang, Girshick, Hebert & Hariharan (2018), "Low-Shot Learning
from Imaginary Data", arXiv:1801.05401. A generator :math:`G(f_s, z)` maps a *seed* feature
:math:`f_s = \\phi(x_s)` of the frozen backbone :math:`\\phi` and noise :math:`z` to a new feature.
As in Wang et al., it is trained end to end for the classifier that will use it: on episodes
of meta-train classes, the prototypes are built from the real support features *and* the
hallucinated ones, and the loss is the ProtoNet cross-entropy of the queries,

.. math:: c_k = \\frac{1}{K + m}\\Big(\\sum_{i} f_{k,i} + \\sum_{j=0}^{m-1} G(f_{k, j \\bmod K}, z_j)\\Big),\\qquad
          L = -\\log \\operatorname{softmax}_k(-\\lVert \\phi(x_q) - c_k\\rVert^2)_{y_q}.

Working on backbone features (32-d for the course's Conv-4) instead of 784 pixels makes it far cheaper than a pixel-space GAN
(seconds of training, no image decoder).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..methods.base import prototypes
from ..methods.protonet import protonet_logits
from ..recipe import Recipe
from .augment import sources_in_turn

# Meta-training (the ``hallucinator`` trainer): 20-way 1-shot 5-query episodes of meta-train backbone features,
# m = 5 hallucinated features per class, Adam 1e-3; ``max_classes`` meta-train classes are embedded.
RECIPES = {"quick": Recipe(trainer="hallucinator", steps=1500, lr=1e-3, n_way=20, n_shot=1, n_query=5, val_every=0,
                           options={"n_generated": 5, "max_classes": 1024}),
           "full": Recipe(trainer="hallucinator", steps=10_000, lr=1e-3, n_way=20, n_shot=1, n_query=5, val_every=0,
                          options={"n_generated": 5, "max_classes": 4000})}
RECIPES["paper"] = RECIPES["full"].replace(note="Hariharan & Girshick 2017 and Wang et al. 2018 train on ImageNet "
                                           "features and give no Omniglot recipe: the course's full recipe")


class FeatureHallucinator(nn.Module):
    """``G(f_s, z) = f_s + scale * MLP([f_s / scale, z])``: a residual generator of ``(n, D)`` features.

    Args:
        feature_dim: D, the backbone's output size.
        z_dim: noise dimension.
        hidden: width of the MLP.
    """

    def __init__(self, feature_dim: int = 64, z_dim: int = 16, hidden: int = 128):
        super().__init__()
        self.feature_dim, self.z_dim, self.hidden = feature_dim, z_dim, hidden
        self.register_buffer("scale", torch.tensor(1.0))  # RMS of the meta-train features
        self.net = nn.Sequential(nn.Linear(feature_dim + z_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, feature_dim))

    def forward(self, seed: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``seed`` ``(n, D)`` and ``z`` ``(n, z_dim)`` -> ``(n, D)`` hallucinated features."""
        return seed + self.scale * self.net(torch.cat([seed / self.scale, z], 1))

    def hallucinate(self, support: torch.Tensor, support_y: torch.Tensor, n_generated: int,
                    generator: torch.Generator | None = None):
        """Differentiable :meth:`generate`: seeds taken in turn from each class's support features."""
        seeds, labels = sources_in_turn(support, support_y, n_generated)  # (n_way * m, D), (n_way * m,)
        z = torch.randn(len(seeds), self.z_dim, generator=generator).to(support)
        return self(seeds, z), labels

    @torch.no_grad()
    def generate(self, support: torch.Tensor, support_y: torch.Tensor, n_generated: int,
                 generator: torch.Generator | None = None):
        """``n_generated`` features per class from support features ``(n_way * n_shot, D)``.

        Returns:
            ``(generated (n_way * n_generated, D), labels (n_way * n_generated,))``, class-major.
        """
        return self.hallucinate(support, support_y, n_generated, generator)

    def train_step(self, batch: dict, optimizer) -> dict:
        """One step of the ProtoNet query loss with hallucinated support features (Wang et al. 2018).

        ``batch``: ``episode`` (of features), ``n_generated`` (m) and ``generator`` (the noise). Returns
        ``loss``, ``accuracy`` (query accuracy with hallucination, a fraction, as every training log) and
        ``accuracy_real`` (without).
        """
        ep, g = batch["episode"], batch["generator"]
        gen, gen_y = self.hallucinate(ep.support_x, ep.support_y, batch["n_generated"], g)
        protos = prototypes(torch.cat([ep.support_x, gen]), torch.cat([ep.support_y, gen_y]), ep.n_way)  # (n_way, D)
        logits = protonet_logits(ep.query_x, protos)  # (n_way * n_query, n_way)
        loss = F.cross_entropy(logits, ep.query_y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"hallucinator loss is {loss.item()}; lower the recipe's lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            real = protonet_logits(ep.query_x, prototypes(ep.support_x, ep.support_y, ep.n_way))
        return {"loss": loss.item(), "accuracy": (logits.argmax(1) == ep.query_y).float().mean().item(),
                "accuracy_real": (real.argmax(1) == ep.query_y).float().mean().item()}  # fractions, as every log

    @torch.no_grad()
    def query_accuracy(self, episode, n_generated: int, generator: torch.Generator | None = None) -> tuple[float, float]:
        """Query accuracy (%) of an episode of features with and without ``n_generated`` hallucinated per class.

        Returns:
            ``(accuracy with hallucination, accuracy of the real support alone)``.
        """
        gen, gen_y = self.generate(episode.support_x, episode.support_y, n_generated, generator)
        with_gen = prototypes(torch.cat([episode.support_x, gen]), torch.cat([episode.support_y, gen_y]), episode.n_way)
        real = prototypes(episode.support_x, episode.support_y, episode.n_way)  # (n_way, D)
        return tuple(100 * (protonet_logits(episode.query_x, p).argmax(1) == episode.query_y).float().mean().item()
                     for p in (with_gen, real))

    def config(self) -> dict:
        return {"feature_dim": self.feature_dim, "z_dim": self.z_dim, "hidden": self.hidden}
