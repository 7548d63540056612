"""Exercises of ``notebooks/10_learning_to_generate.ipynb``: predicted weights, MetaGAN's fake class, a recombined character."""
from __future__ import annotations

import torch

from ..methods.base import prototypes
from ..methods.metagan import with_fake_class
from ..methods.parameter_prediction import ParameterPredictor
from .core import exercise


def _weights_cases():
    g = torch.Generator().manual_seed(911)
    cases = []
    for n_way, k, dim in ((3, 2, 4), (5, 5, 8), (2, 3, 16)):
        predictor = ParameterPredictor(dim, hidden=2 * dim)
        with torch.no_grad():  # a trained-looking predictor: at its zero initialisation it is the identity
            for p in predictor.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        z = torch.randn(n_way * k, dim, generator=g)
        cases.append((z, torch.arange(n_way).repeat_interleave(k), n_way, predictor))
    return cases


@exercise("predicted_weights", "classifier weights psi(class mean) for each class (the mean first, then the predictor)",
          _weights_cases)
def predicted_weights_reference(z_support, support_y, n_way, predictor):
    """``(n_way, D)`` weights: ``predictor`` applied to each class's mean support embedding ``(n_way * n_shot, D)``."""
    return predictor(prototypes(z_support, support_y, n_way))


def _fake_cases():
    g = torch.Generator().manual_seed(912)
    return [(-10 * torch.rand(n, n_way, generator=g), torch.randn(1, generator=g))
            for n, n_way in ((3, 2), (6, 5), (4, 20))]


@exercise("fake_probability", "p(fake | x) from ProtoNet's class logits (n, n_way) and the fake logit b (shape (1,))",
          _fake_cases)
def fake_probability_reference(class_logits, fake_logit):
    """``(n,)``: the (N+1)-th softmax output, ``exp(b) / (exp(b) + sum_k exp(l_k))``, computed stably."""
    return torch.softmax(with_fake_class(class_logits, fake_logit), 1)[:, -1]


def _union_cases():
    g = torch.Generator().manual_seed(913)
    return [((torch.rand(n, 28, 28, generator=g) > 0.8).to(torch.uint8) * 255,
             (torch.rand(n, 28, 28, generator=g) > 0.7).to(torch.uint8) * 255) for n in (1, 5, 20)]


@exercise("recombined_character", "the drawings of a new character: the union of two characters' drawings (uint8)",
          _union_cases)
def recombined_character_reference(drawings_a, drawings_b):
    """``(n, H, W)`` uint8, ink = 255: drawing ``j`` is the pixelwise maximum of drawing ``j`` of each character."""
    return torch.maximum(drawings_a, drawings_b)
