"""Exercises of ``notebooks/10_learning_to_generate.ipynb``: the hallucinator's few-shot loss, predicted weights,
MetaGAN's fake class, a recombined character."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..methods.base import n_way_of, prototypes, round_robin
from ..methods.metagan import with_fake_class
from ..methods.parameter_prediction import ParameterPredictor
from ..methods.protonet import protonet_logits
from .core import exercise


class _LinearHallucinator(torch.nn.Module):
    """A stand-in hallucinator for the checks: ``hallucinate(z, y, m)`` maps each class's support embeddings, in
    turn, through one linear layer (no noise, so every call gives the same features)."""

    def __init__(self, dim: int, g: torch.Generator):
        super().__init__()
        self.map = torch.nn.Linear(dim, dim)
        with torch.no_grad():
            self.map.weight.copy_(torch.eye(dim) + 0.5 * torch.randn(dim, dim, generator=g))
            self.map.bias.copy_(torch.randn(dim, generator=g))

    def forward(self, z_support, support_y, m):
        """``(generated (n_way * m, D), labels (n_way * m,))``, class-major."""
        n_way = n_way_of(support_y)
        return self.map(z_support[round_robin(support_y, m)]), torch.arange(n_way).repeat_interleave(m)


def _joint_cases(seed=914):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for n_way, k, q, m, dim in ((3, 1, 2, 2, 4), (5, 2, 3, 5, 8), (2, 3, 1, 1, 6)):
        z_s, z_q = torch.randn(n_way * k, dim, generator=g), torch.randn(n_way * q, dim, generator=g)
        y_s, y_q = torch.arange(n_way).repeat_interleave(k), torch.arange(n_way).repeat_interleave(q)
        cases.append((z_s, y_s, z_q, y_q, _LinearHallucinator(dim, g), m))
    return cases


def _loss_trains_the_hallucinator(fn) -> str | None:
    """The query loss is the hallucinator's only training signal: its gradient must reach the hallucinator."""
    z_s, y_s, z_q, y_q, hallucinate, m = _joint_cases(seed=915)[1]
    loss = fn(z_s, y_s, z_q, y_q, hallucinate, m)
    grads = torch.autograd.grad(loss, list(hallucinate.parameters()), allow_unused=True) if loss.requires_grad \
        else (None,)
    if any(g is None or not g.abs().sum() > 0 for g in grads):
        return ("no gradient reaches the hallucinator: its features are treated as fixed data (detached, or made "
                "under no_grad), so joint training could never teach it; keep them in the graph")
    return None


@exercise("hallucinator_loss", "the jointly trained hallucinator's loss: cross-entropy of the queries against "
          "prototypes of the real and the hallucinated support embeddings", _joint_cases,
          concept=_loss_trains_the_hallucinator)
def hallucinator_loss_reference(z_support, support_y, z_query, query_y, hallucinate, n_generated):
    """Scalar loss: ``hallucinate(z_support, support_y, m)`` gives ``(n_way * m, D)`` features and their labels;
    prototypes ``(n_way, D)`` pool them with the real ones; ProtoNet's logits (``protonet_logits``) of the queries."""
    gen, gen_y = hallucinate(z_support, support_y, n_generated)  # (n_way * m, D), (n_way * m,)
    protos = prototypes(torch.cat([z_support, gen]), torch.cat([support_y, gen_y]), n_way_of(support_y))
    return F.cross_entropy(protonet_logits(z_query, protos), query_y)


def _weights_cases():
    g = torch.Generator().manual_seed(911)
    cases = []
    for n_way, k, dim in ((3, 2, 4), (5, 5, 8), (2, 3, 16)):
        predictor = ParameterPredictor(dim, hidden=2 * dim)
        with torch.no_grad():  # a trained-looking predictor: at its zero initialisation it is the identity
            for p in predictor.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        z = torch.randn(n_way * k, dim, generator=g)
        order = torch.randperm(n_way * k, generator=g)  # not sorted by class: a reshape into (n_way, k, D) fails
        cases.append((z[order], torch.arange(n_way).repeat_interleave(k)[order], n_way, predictor))
    return cases


@exercise("predicted_weights", "classifier weights psi(class mean) for each class (the mean first, then the predictor)",
          _weights_cases)
def predicted_weights_reference(z_support, support_y, n_way, predictor):
    """``(n_way, D)`` weights: ``predictor`` applied to each class's mean support embedding ``(n_way * n_shot, D)``."""
    return predictor(prototypes(z_support, support_y, n_way))


def _fake_cases():
    g = torch.Generator().manual_seed(912)
    cases = [(-10 * torch.rand(n, n_way, generator=g), torch.randn(1, generator=g)) for n, n_way in ((3, 2), (6, 5), (4, 20))]
    # ProtoNet's logits are minus squared distances, often hundreds: exp() of them underflows to 0 / 0
    cases.append((-1000 * torch.rand(4, 5, generator=g) - 300, torch.tensor([-250.0])))
    return cases


@exercise("fake_probability", "p(fake | x) from ProtoNet's class logits (n, n_way) and the fake logit b (shape (1,))",
          _fake_cases)
def fake_probability_reference(class_logits, fake_logit):
    """``(n,)``: the (N+1)-th softmax output, ``exp(b) / (exp(b) + sum_k exp(l_k))``, computed stably."""
    return torch.softmax(with_fake_class(class_logits, fake_logit), 1)[:, -1]


def _union_cases():
    """Sparse strokes of grey ink (40-255), as the cached drawings have: on pure 0/255 pixels a capped sum or a
    bitwise or gave the maximum too."""
    g = torch.Generator().manual_seed(913)

    def drawings(n, density):
        ink = torch.rand(n, 28, 28, generator=g) < density
        return (ink * torch.randint(40, 256, (n, 28, 28), generator=g)).to(torch.uint8)  # (n, 28, 28)
    return [(drawings(n, 0.2), drawings(n, 0.3)) for n in (1, 5, 20)]


@exercise("recombined_character", "the drawings of a new character: the union of two characters' drawings (uint8)",
          _union_cases)
def recombined_character_reference(drawings_a, drawings_b):
    """``(n, H, W)`` uint8, ink = 255: drawing ``j`` is the pixelwise maximum of drawing ``j`` of each character."""
    return torch.maximum(drawings_a, drawings_b)
