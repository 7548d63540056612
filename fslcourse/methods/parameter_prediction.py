"""Parameter prediction: a small network maps each class's support embeddings to that class's classifier weights.

Taught in ``notebooks/10_learning_to_generate.ipynb``; measured in ``notebooks/11_benchmark.ipynb`` beside ProtoNet, its matched baseline.

Qiao, Liu, Shen & Yuille (2018), "Few-Shot Image Recognition by Predicting Parameters from
Activations", arXiv:1706.03466; the same idea as the weight generator of Gidaris & Komodakis
(2018), "Dynamic Few-Shot Visual Learning without Forgetting", arXiv:1804.09458. Instead of
*generating data* for a new class, generate the *parameters* of its classifier. A predictor
:math:`\\psi` maps the mean support embedding of class :math:`k` to a weight vector, and the
logits are scaled cosine similarities,

.. math:: w_k = \\psi\\Big(\\frac1K \\sum_{i \\in S_k} f_\\phi(x_i)\\Big), \\qquad
          \\ell_k(x) = s \\cdot \\frac{f_\\phi(x)^\\top w_k}{\\lVert f_\\phi(x)\\rVert\\,\\lVert w_k\\rVert},

with :math:`\\psi(a) = a + V\\,\\mathrm{ReLU}(U a + u) + v` (a residual MLP: at :math:`V = 0, v = 0`, its start, it is the
cosine prototype classifier) and a learned scale :math:`s`. The backbone, :math:`\\psi` and :math:`s` are
meta-trained together on episodes, for the queries' cross-entropy. The recipe is ProtoNet's quick
recipe (same episodes, steps, schedule and seed), so the committed ProtoNet is a matched baseline; the
preset ``cosine-prototypes`` (``predictor=False``: :math:`w_k` is the mean embedding itself, with the same
learned scale) separates what the predictor adds from what the cosine classifier adds.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import prototypes, register, register_preset
from .protonet import ProtoNet, protonet_logits


class ParameterPredictor(nn.Module):
    """``psi(a) = a + V ReLU(U a + u) + v``: classifier weights ``(n_way, D)`` from mean activations ``(n_way, D)``.

    Args:
        dim: D, the embedding size; hidden: the width of ``U``.
    """

    def __init__(self, dim: int, hidden: int = 128):
        super().__init__()
        self.up, self.down = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        nn.init.zeros_(self.down.weight)  # starts as the identity: the cosine prototype classifier
        nn.init.zeros_(self.down.bias)

    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        """``ψ(a) = a + V ReLU(U a + u) + v``: ``(n_way, D)`` class weights from ``(n_way, D)`` mean activations."""
        return activations + self.down(F.relu(self.up(activations)))


def cosine_logits(z_query: torch.Tensor, weights: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """``scale * cos(z, w)``: ``(n_query_total, n_way)`` for ``z_query`` ``(n, D)`` and ``weights`` ``(n_way, D)``
    (ProtoNet's cosine logits, :func:`~fslcourse.methods.protonet.protonet_logits`, against the weights)."""
    return protonet_logits(z_query, weights, "cosine", scale)


@register("parameter-prediction")
class ParameterPrediction(ProtoNet):
    """A backbone and a parameter predictor meta-trained together (Qiao et al. 2018, arXiv:1706.03466).

    Args:
        hidden: the predictor's width.
        scale: the initial cosine scale (learned).
        predictor: ``False`` leaves the predictor out: the class mean is the weight (the ablation).
        backbone, backbone_kwargs: as for :class:`~fslcourse.methods.protonet.ProtoNet`.
    """

    def __init__(self, hidden: int = 128, scale: float = 10.0, predictor: bool = True, backbone: str = "conv4",
                 backbone_kwargs: dict | None = None):
        super().__init__(backbone, backbone_kwargs, distance="cosine", scale=scale)
        self.hidden, self.use_predictor = hidden, bool(predictor)
        self.predictor = ParameterPredictor(self.backbone.out_dim, hidden) if predictor else None
        self.log_scale = nn.Parameter(torch.tensor(float(scale)).log())

    def class_weights(self, z_support: torch.Tensor, support_y: torch.Tensor) -> torch.Tensor:
        """The predicted weights ``(n_way, D)`` of each class, from its support embeddings ``(n_way * n_shot, D)``."""
        means = prototypes(z_support, support_y, self.n_way_of(support_y))  # (n_way, D)
        return means if self.predictor is None else self.predictor(means)

    def classify_embeddings(self, z_support, support_y, z_query):
        """Logits ``(n_query_total, n_way)``: scaled cosine similarity to the predicted weights."""
        return cosine_logits(z_query, self.class_weights(z_support, support_y), self.log_scale.exp())

    def config(self) -> dict:
        return {"backbone": self.backbone_name, "backbone_kwargs": self.backbone_kwargs, "hidden": self.hidden,
                "scale": self.scale, "predictor": self.use_predictor}

    RECIPES = {name: r.replace(model={}, note=r.note + "; a parameter predictor on a cosine classifier")
               for name, r in ProtoNet.RECIPES.items()}


register_preset("cosine-prototypes", ParameterPrediction, predictor=False,  # the ablation: no predictor
                recipes={name: r.replace(model={}, note=r.note + "; cosine prototypes, no parameter predictor (the "
                                                             "ablation)") for name, r in ProtoNet.RECIPES.items()})
