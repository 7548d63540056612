"""Transductive inference: let a test episode's unlabelled queries shape its own predictions.

Taught in ``notebooks/02_protonet.ipynb`` (section 7, Lake et al.'s task).

Two test-time techniques that wrap a trained model and change no weight:

* **Batch statistics** (:class:`BatchStatistics`): batch normalisation normalises with the mean and variance of
  the episode's own images (support and queries together) instead of the running ones stored in training, as
  MAML's code does at test time (Finn, Abbeel & Levine 2017, arXiv:1703.03400; Nichol et al. 2018,
  arXiv:1803.02999, discuss what it adds).
* **Soft k-means refinement** (:func:`refine_prototypes`, :class:`SoftKMeans`): Ren et al. (2018), "Meta-Learning
  for Semi-Supervised Few-Shot Classification", arXiv:1803.00676, Section 4.1. Each query joins every prototype
  with the weight the prototypes give it, :math:`w_{jk} = \\mathrm{softmax}_k(-\\lVert z_j - c_k\\rVert^2)`, and
  the prototypes become

  .. math:: \\tilde c_k = \\frac{\\sum_{i: y_i = k} z_i + \\sum_j w_{jk} z_j}{n_k + \\sum_j w_{jk}}

  with :math:`n_k` the class's support examples. Ren et al. take one such step on unlabelled examples; with the
  test queries as the unlabelled set it is transductive. It assumes the queries come from the episode's classes.

Both see every query of an episode before predicting any, so their accuracy is reported apart from the
inductive one (one query at a time), and records say so (``test_batch_norm``, ``transductive``).
"""
from __future__ import annotations

import torch

from .base import FewShotClassifier, prototypes
from .protonet import ProtoNet, protonet_logits

# soft k-means steps used by ``predict --transductive``: the number chosen on meta-validation episodes by
# benchmarks/oneshot_ablation.py (its records keep the sweep; tests/test_committed_results.py checks they agree)
REFINE_STEPS = 5


def refine_prototypes(protos: torch.Tensor, counts: torch.Tensor, z_query: torch.Tensor, steps: int = 1,
                      temperature: float = 1.0) -> torch.Tensor:
    """Soft k-means steps on the prototypes with the queries as unlabelled points (Ren et al. 2018, arXiv:1803.00676).

    Args:
        protos: ``(n_way, D)`` support prototypes (class means).
        counts: ``(n_way,)`` support examples per class (``n_shot`` each in a balanced episode).
        z_query: ``(n_query_total, D)`` query embeddings.
        steps: refinement steps (0 returns ``protos``; Ren et al. use 1).
        temperature: divides the squared distances before the softmax (1 in the paper).

    Returns:
        ``(n_way, D)`` refined prototypes.
    """
    if steps < 0 or int(steps) != steps:
        raise ValueError(f"steps={steps!r} must be a whole number >= 0 (Ren et al. take 1)")
    if not temperature > 0:
        raise ValueError(f"temperature={temperature!r} must be positive (1 is the paper's)")
    counts = counts.to(protos.dtype)[:, None]  # (n_way, 1)
    support_sum = protos * counts  # (n_way, D)
    refined = protos
    for _ in range(int(steps)):
        w = torch.softmax(protonet_logits(z_query, refined) / temperature, dim=1)  # (n_query_total, n_way)
        refined = (support_sum + w.T @ z_query) / (counts + w.sum(0)[:, None])  # (n_way, D)
    return refined


class BatchStatistics(FewShotClassifier):
    """``method`` with batch normalisation from each test episode's own statistics; the running ones are kept.

    Args:
        method: a trained :class:`FewShotClassifier` with BatchNorm layers.
    """

    test_batch_norm = "batch"

    def __init__(self, method: FewShotClassifier):
        super().__init__()
        self.method, self.name = method, method.name
        self.checkpoint_source = getattr(method, "checkpoint_source", None)  # records name the file measured
        self.transductive = getattr(method, "transductive", None)
        self.outputs = getattr(method, "outputs", "logits")  # a wrapped relation model still returns scores

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, C, H, W) -> (n, D)`` embeddings normalised with the statistics of ``x`` itself."""
        return self._with_batch_stats(self.method.embed, x)

    def classify_embeddings(self, z_support, support_y, z_query):
        """The wrapped method's classifier on ``(n_support, D)`` and ``(n_query_total, D)`` embeddings."""
        return self.method.classify_embeddings(z_support, support_y, z_query)

    def predict(self, support_x, support_y, query_x):
        """``(n_query_total, n_way)`` logits, with BatchNorm over the episode's ``support_x`` and ``query_x``."""
        return self._with_batch_stats(self.method.predict, support_x, support_y, query_x)

    def _with_batch_stats(self, fn, *args):
        bns = [m for m in self.method.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        saved = [(m.momentum, m.training) for m in bns]
        for m in bns:
            m.momentum = 0.0  # batch statistics used, running statistics left unchanged
            m.train()
        try:
            return fn(*args)
        finally:
            for m, (momentum, training) in zip(bns, saved):
                m.momentum = momentum
                m.train(training)


class SoftKMeans(FewShotClassifier):
    """A prototype classifier whose prototypes take ``steps`` soft k-means steps on the queries (Ren et al. 2018).

    Args:
        method: a trained method with an embedding seam (``embed``) whose classifier is the Euclidean
            nearest prototype (ProtoNet, or :class:`BatchStatistics` around one).
        steps: soft k-means steps (Ren et al. take 1).
        temperature: divides the squared distances before the softmax.
    """

    transductive = "soft k-means"

    def __init__(self, method: FewShotClassifier, steps: int = 1, temperature: float = 1.0):
        super().__init__()
        if not callable(getattr(method, "embed", None)):
            raise ValueError(f"{type(method).__name__} has no embed(x); soft k-means refines prototypes of "
                             "embeddings: wrap ProtoNet (or BatchStatistics(ProtoNet))")
        inner = getattr(method, "method", method)  # BatchStatistics wraps the model it normalises
        if not hasattr(inner, "distance"):  # fine-tuning, MTL: a learned head, not prototypes
            raise ValueError(f"{type(inner).__name__} classifies with a learned head, not prototypes; soft k-means "
                             "refines Euclidean prototypes: wrap ProtoNet (or BatchStatistics(ProtoNet))")
        if getattr(inner, "distance", "euclidean") != "euclidean":
            raise ValueError(f"soft k-means needs Euclidean prototypes; this model uses distance="
                             f"{inner.distance!r}: use a ProtoNet trained with distance='euclidean'")
        if getattr(type(inner), "classify_embeddings", None) is not ProtoNet.classify_embeddings:
            raise ValueError(f"{type(inner).__name__} builds its prototypes its own way (hallucinated embeddings "
                             "too), which soft k-means would drop: wrap ProtoNet (or BatchStatistics(ProtoNet))")
        refine_prototypes(torch.zeros(1, 1), torch.ones(1), torch.zeros(1, 1), steps, temperature)  # check the args
        self.method, self.name = method, method.name
        self.steps, self.temperature = int(steps), float(temperature)
        self.test_batch_norm = getattr(method, "test_batch_norm", "running")
        self.checkpoint_source = getattr(method, "checkpoint_source", None)

    def predict(self, support_x, support_y, query_x):
        """``(n_query_total, n_way)`` logits against the refined prototypes.

        Args:
            support_x: ``(n_way * n_shot, C, H, W)`` support images.
            support_y: ``(n_way * n_shot,)`` labels in ``0 .. n_way-1``.
            query_x: ``(n_query_total, C, H, W)`` query images, all seen before any is classified.
        """
        n_way = self.check_support(support_x, support_y, query_x)
        z = self.method.embed(torch.cat([support_x, query_x]))  # (n_support + n_query_total, D): one pass
        z_support, z_query = z[: len(support_x)], z[len(support_x):]
        protos = prototypes(z_support, support_y, n_way)  # (n_way, D)
        counts = torch.bincount(support_y, minlength=n_way)  # (n_way,)
        return protonet_logits(z_query, refine_prototypes(protos, counts, z_query, self.steps, self.temperature))
