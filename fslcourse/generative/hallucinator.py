"""A feature-space hallucinator: new backbone features of a novel class from one real feature and noise.

Taught in ``notebooks/07_gan_augmentation.ipynb``.

Hariharan & Girshick (2017), "Low-shot Visual Recognition by Shrinking and Hallucinating
Features", arXiv:1606.02819, and Wang, Girshick, Hebert & Hariharan (2018), "Low-Shot Learning
from Imaginary Data", arXiv:1801.05401. A generator :math:`G(f_s, z)` maps a *seed* feature
:math:`f_s = \\phi(x_s)` of the frozen backbone :math:`\\phi` and noise :math:`z` to a new feature.
As in Wang et al., it is trained end to end for the classifier that will use it: on episodes
of meta-train classes, the prototypes are built from the real support features *and* the
hallucinated ones, and the loss is the ProtoNet cross-entropy of the queries,

.. math:: c_k = \\frac{1}{K + m}\\Big(\\sum_{i} f_{k,i} + \\sum_{j=1}^{m} G(f_{k, j \\bmod K}, z_j)\\Big),\\qquad
          L = -\\log \\operatorname{softmax}_k(-\\lVert \\phi(x_q) - c_k\\rVert^2)_{y_q}.

Working on backbone features (32-d for the course's Conv-4) instead of 784 pixels makes it far cheaper than a pixel-space GAN
(seconds of training, no image decoder).
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..data.episodes import EpisodeSampler
from ..methods.base import prototypes
from ..methods.protonet import protonet_logits


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
        n_way = int(support_y.max()) + 1
        labels = torch.arange(n_way, device=support_y.device).repeat_interleave(n_generated)  # (n_way * m,)
        by_class = [torch.nonzero(support_y == k).flatten() for k in range(n_way)]
        seeds = torch.stack([by_class[k][i % len(by_class[k])] for k in range(n_way) for i in range(n_generated)])
        z = torch.randn(n_way * n_generated, self.z_dim, generator=generator).to(support)
        return self(support[seeds], z), labels

    @torch.no_grad()
    def generate(self, support: torch.Tensor, support_y: torch.Tensor, n_generated: int,
                 generator: torch.Generator | None = None):
        """``n_generated`` features per class from support features ``(n_way * n_shot, D)``.

        Returns:
            ``(generated (n_way * n_generated, D), labels (n_way * n_generated,))``, class-major.
        """
        return self.hallucinate(support, support_y, n_generated, generator)

    def config(self) -> dict:
        return {"feature_dim": self.feature_dim, "z_dim": self.z_dim, "hidden": self.hidden}


def train_hallucinator(model: FeatureHallucinator, feature_split, *, steps: int = 1000, n_way: int = 20,
                       n_shot: int = 1, n_query: int = 5, n_generated: int = 5, lr: float = 1e-3, seed: int = 0,
                       progress: bool = True) -> dict:
    """Meta-train the hallucinator on episodes of (meta-train) backbone features.

    Args:
        feature_split: an object with ``get``, ``n_classes``, ``n_examples`` and ``name`` holding
            features ``(n_classes, n_examples, D)`` (e.g. :class:`~fslcourse.generative.vae_generator.FeatureSplit`).
        n_way, n_shot, n_query: the training episodes; n_generated: m, features hallucinated per class.
        seed: seeds the episodes and the noise.

    Returns:
        History dict: ``step``, ``loss``, ``accuracy`` (query accuracy with hallucination, %),
        ``accuracy_real`` (the same episode without it), ``seconds``, ``steps``, ``split``.
    """
    sampler = EpisodeSampler(feature_split, n_way, n_shot, n_query, seed=seed)
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    hist = {"step": [], "loss": [], "accuracy": [], "accuracy_real": []}
    model.train()
    start = time.perf_counter()
    for step in tqdm(range(1, steps + 1), desc="training hallucinator", disable=not progress):
        ep = sampler.sample()
        gen, gen_y = model.hallucinate(ep.support_x, ep.support_y, n_generated, g)
        protos = prototypes(torch.cat([ep.support_x, gen]), torch.cat([ep.support_y, gen_y]), n_way)  # (n_way, D)
        logits = protonet_logits(ep.query_x, protos)  # (n_way * n_query, n_way)
        loss = F.cross_entropy(logits, ep.query_y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"hallucinator loss is {loss.item()} at step {step}; lower lr (now {lr})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            real = protonet_logits(ep.query_x, prototypes(ep.support_x, ep.support_y, n_way))
        hist["step"].append(step)
        hist["loss"].append(loss.item())
        hist["accuracy"].append(100 * (logits.argmax(1) == ep.query_y).float().mean().item())
        hist["accuracy_real"].append(100 * (real.argmax(1) == ep.query_y).float().mean().item())
    model.eval()
    hist.update(seconds=time.perf_counter() - start, steps=steps, split=feature_split.name)
    return hist
