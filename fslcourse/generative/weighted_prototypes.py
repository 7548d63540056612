"""Why plain augmentation can hurt a prototype classifier, and two repairs: down-weighting and rejection.

Taught in ``notebooks/07_vae_augmentation.ipynb``.

Adding m generated examples per class to K real ones moves the prototype of Prototypical
Networks (Snell et al. 2017, arXiv:1703.05175) towards the generated mean, the *prototype
drag*. With a weight :math:`\\lambda` on the generated examples the prototype is

.. math:: c_k(\\lambda) = \\frac{\\sum_{i \\in S_k} f(x_i) + \\lambda \\sum_{j \\in G_k} f(\\tilde x_j)}{K + \\lambda m},

so :math:`\\lambda = 0` ignores the generator, :math:`\\lambda = 1` is plain augmentation and
:math:`\\lambda \\to \\infty` keeps only the generated mean. *Rejection* drops a generated example
whose nearest real prototype (:math:`\\lambda = 0`) is another class's, before the weighting;
it is the filter of hallucination papers in its simplest form (Wang et al. 2018, "Low-shot
learning from imaginary data", arXiv:1801.05401, discuss why unfiltered samples hurt).
"""
from __future__ import annotations

import torch

from ..methods.base import FewShotClassifier, prototypes
from ..methods.protonet import protonet_logits
from .augment import check_generator_for


def weighted_prototypes(z_real: torch.Tensor, y_real: torch.Tensor, z_gen: torch.Tensor, y_gen: torch.Tensor,
                        n_way: int, weight: float) -> torch.Tensor:
    """:math:`c_k(\\lambda)`, real examples with weight 1 and generated ones with weight ``weight``.

    Args:
        z_real: ``(n_way * n_shot, D)`` real support embeddings; y_real: ``(n_way * n_shot,)``.
        z_gen: ``(n_gen, D)`` generated embeddings; y_gen: ``(n_gen,)`` (a class may have none).
        weight: λ >= 0.

    Returns:
        ``(n_way, D)`` prototypes.
    """
    if not 0 <= weight < float("inf"):  # also refuses NaN
        raise ValueError(f"weight={weight!r}: the weight of generated examples must be a finite number >= 0")
    sums = torch.zeros(n_way, z_real.shape[1], dtype=z_real.dtype, device=z_real.device)
    sums.index_add_(0, y_real, z_real).index_add_(0, y_gen, weight * z_gen)
    counts = torch.bincount(y_real, minlength=n_way) + weight * torch.bincount(y_gen, minlength=n_way)
    return sums / counts.to(z_real.dtype)[:, None]


def embedded_samples(method, generator, support_x, support_y, z_support, n_generated: int, seed: int):
    """``n_generated`` samples per class in ``method``'s embedding: ``(z_gen (n_way * m, D), y_gen (n_way * m,))``.

    A feature-space generator works on the support embeddings ``z_support``, a pixel-space one on the
    drawings ``support_x``, whose samples are then embedded.
    """
    feature = generator.space == "feature"
    gen, gen_y = generator.generate(z_support if feature else support_x, support_y, n_generated, seed)
    return (gen.to(z_support) if feature else method.embed(gen.to(support_x))), gen_y.to(support_y)


def keep_recognised(z_gen: torch.Tensor, y_gen: torch.Tensor, real_protos: torch.Tensor) -> torch.Tensor:
    """Boolean mask ``(n_gen,)``: the generated examples whose nearest real prototype is their own class.

    Args:
        z_gen: ``(n_gen, D)`` generated embeddings; y_gen: ``(n_gen,)`` their classes; real_protos: ``(n_way, D)``.
    """
    return torch.cdist(z_gen, real_protos).argmin(1) == y_gen


class WeightedAugmentation(FewShotClassifier):
    """A ProtoNet whose prototypes take ``n_generated`` generated examples per class with weight λ.

    Args:
        method: a trained ProtoNet (anything with ``embed`` and prototype logits: ``distance``, ``scale``).
        generator: a :class:`~fslcourse.generative.augment.SupportGenerator` (pixel or feature space).
        n_generated: m, generated examples per class.
        weight: λ (1 = plain augmentation, 0 = none).
        reject: drop generated examples nearer another class's real prototype first.
        seed: seeds the generation; episode ``i`` uses ``seed * 1_000_003 + i`` as
            :class:`~fslcourse.generative.augment.AugmentedClassifier` does, so both see the same samples.
    """

    name = "weighted-augmentation"

    def __init__(self, method, generator, n_generated: int, weight: float = 1.0, reject: bool = False,
                 seed: int = 0):
        super().__init__()
        if not hasattr(method, "embed") or not hasattr(method, "distance"):
            raise ValueError(f"{type(method).__name__} does not classify by prototypes of embeddings; weighted "
                             "prototypes need a ProtoNet")
        check_generator_for(method, generator)
        if isinstance(n_generated, bool) or not isinstance(n_generated, int) or n_generated < 1:
            raise ValueError(f"n_generated={n_generated!r}: generate at least one example per class")
        if not 0 <= weight < float("inf"):  # also refuses NaN, before any episode
            raise ValueError(f"weight={weight!r}: the weight of generated examples must be a finite number >= 0")
        self.method, self.generator, self.n_generated = method, generator, n_generated
        self.weight, self.reject, self.seed, self.episode_index = float(weight), reject, seed, 0
        self.test_batch_norm = getattr(method, "test_batch_norm", None)
        source = getattr(method, "checkpoint_source", None)
        if source is not None:
            self.checkpoint_source = {**source, "generator": getattr(generator, "source", None)}
        self.kept = []  # per episode: the fraction of generated examples kept (1.0 without rejection)

    def start_episodes(self) -> None:
        self.episode_index = 0

    @torch.no_grad()
    def predict(self, support_x, support_y, query_x):
        """Logits ``(n_query_total, n_way)`` against the weighted prototypes."""
        self.check_support(support_x, support_y, query_x)
        g = self.seed * 1_000_003 + self.episode_index
        self.episode_index += 1
        n_way = self.n_way_of(support_y)
        z = self.method.embed(torch.cat([support_x, query_x]))  # (n_support + n_query_total, D)
        z_s, z_q = z[: len(support_x)], z[len(support_x):]
        z_g, gen_y = embedded_samples(self.method, self.generator, support_x, support_y, z_s, self.n_generated, g)
        if self.reject:
            keep = keep_recognised(z_g, gen_y, prototypes(z_s, support_y, n_way))
            z_g, gen_y = z_g[keep], gen_y[keep]
        self.kept.append(len(gen_y) / (n_way * self.n_generated))
        protos = weighted_prototypes(z_s, support_y, z_g, gen_y, n_way, self.weight)
        return protonet_logits(z_q, protos, self.method.distance, self.method.scale)


@torch.no_grad()
def prototype_drag(method, generator, episode, n_generated: int, seed: int = 0, weight: float = 1.0) -> dict:
    """One episode's embeddings, projected to their first two principal axes, for the prototype-drag figure.

    Args:
        method: a ProtoNet; generator: a support generator; episode: an :class:`~fslcourse.data.Episode`.

    Returns:
        2-D points: ``support`` ``(n_way * n_shot, 2)``, ``generated`` ``(n_way * m, 2)``, ``query``, the
        real prototypes ``old`` and the augmented ones ``new`` ``(n_way, 2)``, with the labels
        ``support_y``, ``generated_y``, ``query_y``; ``recognised`` ``(n_way * m,)``: nearest real prototype is
        the sample's own class; and ``accuracy_old`` / ``accuracy_new`` of the episode's queries (percent).
    """
    from ..widgets.plotting import principal_axes

    sx, sy, qx, qy = episode.support_x, episode.support_y, episode.query_x, episode.query_y
    n_way = int(sy.max()) + 1
    z = method.embed(torch.cat([sx, qx]))  # (n_support + n_query_total, D)
    z_s, z_q = z[: len(sx)], z[len(sx):]
    z_g, gen_y = embedded_samples(method, generator, sx, sy, z_s, n_generated, seed)
    old = prototypes(z_s, sy, n_way)
    new = weighted_prototypes(z_s, sy, z_g, gen_y, n_way, weight)
    points = torch.cat([z_s, z_g, z_q, old, new])
    coords, _, _ = principal_axes(points)  # (n_points, 2)
    parts = coords.split([len(z_s), len(z_g), len(z_q), n_way, n_way])

    def accuracy(protos):
        return 100 * (protonet_logits(z_q, protos, method.distance, method.scale).argmax(1) == qy).float().mean().item()

    return {"support": parts[0], "generated": parts[1], "query": parts[2], "old": parts[3], "new": parts[4],
            "support_y": sy.cpu(), "generated_y": gen_y.cpu(), "query_y": qy.cpu(),  # with the CPU points
            "recognised": keep_recognised(z_g, gen_y, old).cpu(),
            "accuracy_old": accuracy(old), "accuracy_new": accuracy(new)}
