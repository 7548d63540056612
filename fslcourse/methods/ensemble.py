"""An ensemble of few-shot classifiers: average the members' log-probabilities.

Taught in ``notebooks/02_protonet.ipynb`` (section 7, Lake et al.'s task).

Lakshminarayanan, Pritzel & Blundell (2017), "Simple and Scalable Predictive Uncertainty Estimation using Deep
Ensembles", arXiv:1612.01474: networks trained from different random seeds make partly independent errors, and
averaging their predictive distributions is more accurate than any one of them. Here each member classifies the
same episode; the ensemble's logits are the mean of the members' log-softmax outputs,
:math:`\\log p(y \\mid x) \\propto \\frac{1}{M}\\sum_m \\log p_m(y \\mid x)` (a geometric mean of the members'
probabilities, where the paper averages the probabilities themselves), so members whose logits have different
scales count equally.
"""
from __future__ import annotations

import torch

from .base import FewShotClassifier


class Ensemble(FewShotClassifier):
    """The mean log-probability of ``members`` (after Lakshminarayanan et al. 2017, arXiv:1612.01474, who average probabilities).

    Args:
        members: two or more trained :class:`FewShotClassifier` (e.g. one recipe trained from two seeds),
            or wrappers of them (:mod:`fslcourse.methods.transductive`).
    """

    def __init__(self, members):
        super().__init__()
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}; pass a list of models")
        scores = [type(m).__name__ for m in members if getattr(m, "outputs", "logits") != "logits"]
        if scores:
            raise ValueError(f"{', '.join(scores)} returns scores, not logits, and a softmax of scores in [0, 1] is "
                             "nearly flat, so it would hardly count; ensemble methods that return logits")
        self.members = torch.nn.ModuleList(members)
        self.name = "+".join(dict.fromkeys(m.name for m in members))
        self.needs_grad_at_test = any(getattr(m, "needs_grad_at_test", False) for m in members)
        modes = {getattr(m, "test_batch_norm", "running") for m in members}
        self.test_batch_norm = modes.pop() if len(modes) == 1 else "mixed"
        self.transductive = next((m.transductive for m in members if getattr(m, "transductive", None)), None)
        sources = [getattr(m, "checkpoint_source", None) or {} for m in members]
        splits = {s.get("split") for s in sources}
        # records name every member's file; the split is the members' when they share one
        self.checkpoint_source = {"file": " + ".join(str(s.get("file")) for s in sources),
                                  "sha256": [s.get("sha256") for s in sources], "members": sources,
                                  "split": splits.pop() if len(splits) == 1 else "mixed"}

    def predict(self, support_x, support_y, query_x):
        """Mean member log-probabilities.

        Args:
            support_x: ``(n_way * n_shot, C, H, W)`` support images.
            support_y: ``(n_way * n_shot,)`` labels in ``0 .. n_way-1``.
            query_x: ``(n_query_total, C, H, W)`` query images.

        Returns:
            ``(n_query_total, n_way)`` logits (log-probabilities up to a constant per query).
        """
        self.check_support(support_x, support_y, query_x)
        logp = [torch.log_softmax(m.predict(support_x, support_y, query_x), dim=1) for m in self.members]
        return torch.stack(logp).mean(0)  # (n_members, n_query_total, n_way) -> (n_query_total, n_way)
