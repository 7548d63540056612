"""Exercises of ``notebooks/09_learning_to_generate.ipynb``: the weights a parameter predictor gives each class."""
from __future__ import annotations

import torch

from ..methods.base import prototypes
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
