"""Nearest prototype in pixel space: the baseline every learned method must beat.

Taught in ``notebooks/01_episodes.ipynb``.

Each class's prototype is the mean of its support images; a query gets the
label of the nearest prototype in squared Euclidean distance on raw pixels.
This is Prototypical Networks (Snell et al. 2017, arXiv:1703.05175) with the
identity as the embedding, so it learns nothing and needs no checkpoint.
"""
from __future__ import annotations

import torch

from .base import FewShotClassifier, prototypes, register


@register("pixel")
class PixelPrototype(FewShotClassifier):
    """Nearest class mean on flattened pixels (no parameters)."""

    trainable = False
    test_batch_norm = "none"

    def predict(self, support_x, support_y, query_x):
        """Negative squared distances to the class means.

        Args:
            support_x: ``(n_way * n_shot, C, H, W)``.
            support_y: ``(n_way * n_shot,)``.
            query_x: ``(n_query_total, C, H, W)``.

        Returns:
            ``(n_query_total, n_way)`` logits ``-||x - c_k||^2``.
        """
        n_way = self.check_support(support_x, support_y, query_x)
        support = support_x.flatten(1)  # (n_way * n_shot, C*H*W)
        query = query_x.flatten(1)  # (n_query_total, C*H*W)
        return -torch.cdist(query, prototypes(support, support_y, n_way)).pow(2)
