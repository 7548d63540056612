"""How good are generated examples? Recognisability, a classifier score, Fréchet distance and diversity.

Taught in ``notebooks/07_vae_augmentation.ipynb``; the GAN and diffusion notebooks reuse it.

The Fréchet distance between Gaussians fitted to two sets of features (Dowson & Landau
1982; as FID: Heusel et al. 2017, arXiv:1706.08500) is

.. math:: d^2 = \\lVert \\mu_r - \\mu_g \\rVert^2 + \\mathrm{tr}\\big(\\Sigma_r + \\Sigma_g - 2 (\\Sigma_r^{1/2} \\Sigma_g \\Sigma_r^{1/2})^{1/2}\\big).

FID uses Inception-v3 features; those weights cannot be downloaded offline and were
trained on natural images, so the course uses the feature space of its *own* trained
backbone (the ProtoNet Conv-4): the numbers are comparable within the course, not with
published FIDs. Per novel class there are at most 20 real drawings for a 64-d space, so
the covariances are rank-deficient; the formula still holds (it is computed with
symmetric square roots), but compare distances against a real-vs-real reference.

*Recognisability* (:func:`nearest_prototype_accuracy`) asks whether a sample is its class: the
real support prototypes of an episode classify the samples generated from that support set.
It is a classification score, not a likelihood: a generator that copies the support drawing is
recognised perfectly and adds nothing. The *classifier score* is the Inception Score's idea
(Salimans et al. 2016, arXiv:1606.03498) with the course's classifier in place of Inception:
:math:`\\exp\\,\\mathbb E_x\\,\\mathrm{KL}(p(y\\mid x)\\,\\|\\,p(y))`, with :math:`p(y\\mid x)` the
ProtoNet posterior over the episode's classes; it is 1 when every sample is ambiguous or all
samples look alike, and ``n_way`` when each is confidently one class and the classes are balanced.
"""
from __future__ import annotations

import torch

from ..data.episodes import EpisodeSampler
from ..evaluate import mean_ci95
from ..methods.base import n_way_of, prototypes
from ..methods.protonet import protonet_logits


def _sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite ``(D, D)`` matrix (negative eigenvalues clipped)."""
    evals, evecs = torch.linalg.eigh(a)
    return (evecs * evals.clamp_min(0).sqrt()) @ evecs.T


def frechet_distance(real: torch.Tensor, generated: torch.Tensor) -> float:
    """Squared Fréchet distance between Gaussians fitted to ``real`` ``(n_r, D)`` and ``generated`` ``(n_g, D)``.

    Covariances use ``n - 1`` in the denominator (each set needs at least 2 rows).
    Computed in float64 as ``||mu_r - mu_g||^2 + tr(S_r) + tr(S_g) - 2 tr((S_r^1/2 S_g S_r^1/2)^1/2)``.
    """
    if real.dim() != 2 or generated.dim() != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(f"real and generated must be (n, D) with the same D, got {tuple(real.shape)} and "
                         f"{tuple(generated.shape)}; flatten images or embed them first")
    if len(real) < 2 or len(generated) < 2:
        raise ValueError(f"a covariance needs at least 2 rows, got {len(real)} real and {len(generated)} generated")
    r, g = real.cpu().double(), generated.cpu().double()  # on the CPU first: MPS has no float64
    mu_r, mu_g = r.mean(0), g.mean(0)
    s_r, s_g = torch.cov(r.T).reshape(r.shape[1], -1), torch.cov(g.T).reshape(g.shape[1], -1)  # (D, D) each
    root_r = _sqrtm_psd(s_r)
    cross = _sqrtm_psd(root_r @ s_g @ root_r)
    d2 = (mu_r - mu_g).pow(2).sum() + s_r.trace() + s_g.trace() - 2 * cross.trace()
    return float(d2.clamp_min(0))


def mean_pairwise_distance(features: torch.Tensor) -> float:
    """Diversity of a set: the mean Euclidean distance over all pairs of rows of ``(n, D)`` (n >= 2)."""
    if len(features) < 2:
        raise ValueError(f"diversity needs at least 2 examples, got {len(features)}")
    f = features.cpu().double()
    d = torch.cdist(f, f)  # (n, n)
    n = len(f)
    return float(d.sum() / (n * (n - 1)))


@torch.no_grad()
def per_class_quality(embed, real_x: torch.Tensor, real_y: torch.Tensor, gen_x: torch.Tensor,
                      gen_y: torch.Tensor, embedded: bool = False) -> dict:
    """Fréchet distance and diversity per class, real against generated.

    Args:
        embed: the backbone, ``(n, C, H, W) -> (n, D)`` (ignored when ``embedded``).
        real_x, real_y: real examples of each class and their labels ``(n_r,)``.
        gen_x, gen_y: generated examples and labels ``(n_g,)``.
        embedded: the inputs are already features ``(n, D)``.

    Returns:
        ``{"frechet": [per class], "diversity_real": [...], "diversity_generated": [...]}``
        (labels ``0 .. n_classes-1`` in order).
    """
    f_r = real_x if embedded else embed(real_x)
    f_g = gen_x if embedded else embed(gen_x)
    out = {"frechet": [], "diversity_real": [], "diversity_generated": []}
    for k in range(n_way_of(real_y)):
        fr, fg = f_r[real_y == k], f_g[gen_y == k]
        out["frechet"].append(frechet_distance(fr, fg))
        out["diversity_real"].append(mean_pairwise_distance(fr))
        out["diversity_generated"].append(mean_pairwise_distance(fg))
    return out


def classifier_score(probs: torch.Tensor) -> float:
    """The Inception-Score analogue :math:`\\exp\\,\\mathbb E_x\\,\\mathrm{KL}(p(y\\mid x)\\,\\|\\,p(y))` of class
    posteriors ``probs`` ``(n, n_way)`` (rows sum to 1); between 1 and ``n_way``."""
    p = probs.cpu().double().clamp_min(1e-12)
    marginal = p.mean(0, keepdim=True)  # (1, n_way)
    return float((p * (p.log() - marginal.log())).sum(1).mean().exp())


@torch.no_grad()
def nearest_prototype_accuracy(generator, backbone, split, n_way: int = 5, n_shot: int = 1, n_generated: int = 5,
                               n_episodes: int = 20, seed: int = 0) -> dict:
    """Are generated samples recognisably their class? Nearest-real-prototype accuracy in the backbone's space.

    For each seeded episode, the real support prototypes classify the ``n_generated`` samples per class
    generated from that support set, and (for reference) ``n_generated`` real query drawings per class.

    Args:
        generator: a :class:`~fslcourse.generative.augment.SupportGenerator` of pixels.
        backbone: the embedding ``(n, 1, 28, 28) -> (n, D)`` whose prototypes judge the samples.
        split: the characters (an :class:`~fslcourse.data.splits.ImageSplit`); episodes of ``n_way`` classes and
            ``n_shot`` support drawings, ``n_episodes`` of them, seeded by ``seed``.
        n_generated: samples (and real queries) per class.

    Returns:
        ``{"generated", "generated_ci95", "real", "real_ci95", "chance"}`` in percent, ``"episodes"``, and
        the mean :func:`classifier_score` per episode of the generated (``"score"``) and real (``"score_real"``)
        drawings (the posterior: softmax of ProtoNet's negative squared distances).
    """
    backbone.eval()
    device = next(backbone.parameters()).device
    sampler = EpisodeSampler(split, n_way, n_shot, n_generated, seed=seed)
    gen_acc, real_acc, gen_score, real_score = [], [], [], []
    for i in range(n_episodes):
        ep = sampler.sample()
        sx, sy = ep.support_x.to(device), ep.support_y.to(device)
        protos = prototypes(backbone(sx), sy, n_way)  # (n_way, D)
        gx, gy = generator.generate(sx, sy, n_generated, seed * 1_000_003 + i)
        logits_g, logits_r = (protonet_logits(backbone(x.to(device)), protos) for x in (gx, ep.query_x))
        gen_acc.append((logits_g.argmax(1) == gy.to(device)).float().mean().item())
        real_acc.append((logits_r.argmax(1) == ep.query_y.to(device)).float().mean().item())
        gen_score.append(classifier_score(logits_g.softmax(1)))
        real_score.append(classifier_score(logits_r.softmax(1)))
    (g, g_ci), (r, r_ci) = mean_ci95([100 * a for a in gen_acc]), mean_ci95([100 * a for a in real_acc])
    return {"generated": g, "generated_ci95": g_ci, "real": r, "real_ci95": r_ci, "chance": 100 / n_way,
            "score": sum(gen_score) / n_episodes, "score_real": sum(real_score) / n_episodes,
            "episodes": n_episodes, "n_way": n_way, "n_shot": n_shot, "n_generated": n_generated}
