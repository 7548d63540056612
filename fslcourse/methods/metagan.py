"""MetaGAN: a ProtoNet that also learns to call a generator's drawings "fake", an (N+1)-th class.

Taught in ``notebooks/10_learning_to_generate.ipynb``; measured in ``notebooks/11_benchmark.ipynb`` beside ProtoNet, its matched baseline.

Zhang, Che, Ghahramani, Bengio & Song (2018), "MetaGAN: An Adversarial Approach to Few-Shot
Learning", NeurIPS 2018 (proceedings only, no arXiv version). The few-shot classifier is also the
discriminator of a GAN whose generator is conditioned on the task. Besides the episode's
:math:`N` classes the classifier has a "fake" class :math:`N+1`; the generator draws images near
each class (conditioned on the class prototype :math:`c_k`), and the classifier must put them in
the fake class. Generated drawings that are *almost* class :math:`k` lie between the classes, so
calling them fake sharpens the decision boundaries; the generator is the adversary that keeps
finding those in-between drawings. With ProtoNet's logits :math:`\\ell_k(x) = -\\lVert f_\\phi(x) -
c_k\\rVert^2` and a learned fake logit :math:`b` (a distance threshold),

.. math:: p(\\text{fake} \\mid x) = \\frac{e^{b}}{e^{b} + \\sum_k e^{\\ell_k(x)}},\\qquad
          L_D = \\mathrm{CE}_{N+1}(x_q, y_q) - \\lambda\\,\\mathbb{E}_z \\log p(\\text{fake} \\mid G(c_k, z)),\\qquad
          L_G = \\Big\\lVert \\mathbb{E}_{q} f(x_q) - \\mathbb{E}_z f\\big(G(c_k, z)\\big) \\Big\\rVert^2.

The backbone and :math:`b` descend :math:`L_D`, the generator descends :math:`L_G`, feature matching as in
the paper (Salimans et al. 2016, arXiv:1606.03498: the mean embedding of the fakes matches the real
queries'); ``generator_loss="non-saturating"`` uses :math:`-\\mathbb{E}_z \\log(1 - p(\\text{fake} \\mid G))`
instead (not measured in the course's records). At test time the fake class
and the generator are dropped: ``predict`` is ProtoNet's, so any gain comes from training alone.
Fakes are embedded with the batch-norm layers in evaluation mode, so they never enter the running
statistics used at test time. The recipe is ProtoNet's quick recipe (same episodes, steps, schedule
and seed): the committed ProtoNet is the matched baseline.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .base import prototypes, register
from .protonet import ProtoNet, protonet_logits

GENERATOR_LOSSES = ("feature-matching", "non-saturating")


def with_fake_class(logits: torch.Tensor, fake_logit: torch.Tensor) -> torch.Tensor:
    """``(n, N)`` class logits -> ``(n, N + 1)``: the fake class's logit ``fake_logit`` appended last."""
    return torch.cat([logits, fake_logit.expand(len(logits), 1)], 1)  # fake_logit: (n, 1)


@contextlib.contextmanager
def running_statistics(module: nn.Module):
    """Inside, ``module``'s batch-norm layers normalise with their running statistics and do not update them."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    modes = [m.training for m in bns]
    for m in bns:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(bns, modes):
            m.train(mode)


class TaskGenerator(nn.Module):
    """``G(c_k, z)``: a ``(n, 1, 28, 28)`` drawing in [0, 1] from a class prototype ``(n, D)`` and noise.

    Args:
        dim: D, the embedding size; z_dim: the noise size; hidden: the MLP's width.
    """

    def __init__(self, dim: int, z_dim: int = 16, hidden: int = 256, side: int = 28):
        super().__init__()
        self.z_dim, self.side = z_dim, side
        self.net = nn.Sequential(nn.Linear(dim + z_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, side * side))

    def forward(self, protos: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Drawings ``(n, 1, side, side)`` in [0, 1] from prototypes ``(n, D)`` and noise ``(n, z_dim)``."""
        out = torch.sigmoid(self.net(torch.cat([protos, z], 1)))  # (n, side * side)
        return out.view(-1, 1, self.side, self.side)  # (n, side * side) -> (n, 1, side, side)


@register("metagan")
class MetaGAN(ProtoNet):
    """ProtoNet trained as the discriminator of a task-conditioned GAN with a fake class (Zhang et al. 2018).

    Args:
        n_fake: m, generated drawings per class in each training episode.
        fake_weight: λ, the weight of the fake-class term of the classifier's loss.
        z_dim, hidden: the generator's noise size and width.
        generator_loss: ``"feature-matching"`` (the paper's: the mean embedding of the fakes matches the real
            queries', Salimans et al. 2016, arXiv:1606.03498, :math:`L_G` above) or ``"non-saturating"``
            (:math:`-\\mathbb{E}_z \\log(1 - p(\\text{fake} \\mid G))`, as the text above says).
        backbone, backbone_kwargs, distance, scale: as for :class:`~fslcourse.methods.protonet.ProtoNet`.
    """

    def __init__(self, n_fake: int = 1, fake_weight: float = 1.0, z_dim: int = 16, hidden: int = 256,
                 generator_loss: str = "feature-matching", backbone: str = "conv4",
                 backbone_kwargs: dict | None = None, distance: str = "euclidean", scale: float = 10.0):
        super().__init__(backbone, backbone_kwargs, distance, scale)
        if isinstance(n_fake, bool) or not isinstance(n_fake, int) or n_fake < 1:
            raise ValueError(f"n_fake={n_fake!r} must be a whole number >= 1 (for no fakes, use protonet)")
        if generator_loss not in GENERATOR_LOSSES:
            raise ValueError(f"generator_loss={generator_loss!r} is not known; use one of {', '.join(GENERATOR_LOSSES)}")
        self.generator_loss = generator_loss
        self.n_fake, self.fake_weight, self.z_dim, self.hidden = n_fake, float(fake_weight), z_dim, hidden
        self.generator = TaskGenerator(self.backbone.out_dim, z_dim, hidden)
        self.fake_logit = nn.Parameter(torch.zeros(1))

    @torch.no_grad()
    def draw_fakes(self, support_x, support_y, n_per_class: int, generator: torch.Generator | None = None):
        """What the generator draws for this support set: ``(n_way * n_per_class, 1, 28, 28)``, class-major."""
        n_way = self.check_support(support_x, support_y, support_x)
        protos = prototypes(self.embed(support_x), support_y, n_way)  # (n_way, D)
        noise = torch.randn(n_way * n_per_class, self.z_dim, generator=generator).to(protos)
        return self.generator(protos.repeat_interleave(n_per_class, 0), noise)

    @torch.no_grad()
    def fake_probability(self, support_x, support_y, x) -> torch.Tensor:
        """``p(fake | x)`` ``(n,)`` of images ``x`` ``(n, C, H, W)`` against this support set's prototypes."""
        n_way = self.check_support(support_x, support_y, x)
        protos = prototypes(self.embed(support_x), support_y, n_way)  # (n_way, D)
        logits = protonet_logits(self.embed(x), protos, self.distance, self.scale)  # (n, n_way)
        return F.softmax(with_fake_class(logits, self.fake_logit), 1)[:, -1]

    def discriminate(self, episode) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The two losses of one training episode and the query accuracy: ``(L_D, L_G, accuracy)``."""
        n_way = self.check_support(episode.support_x, episode.support_y, episode.query_x)
        z = self.embed(torch.cat([episode.support_x, episode.query_x]))  # (n_support + n_query_total, D)
        protos = prototypes(z[: len(episode.support_x)], episode.support_y, n_way)  # (n_way, D)
        logits = with_fake_class(protonet_logits(z[len(episode.support_x):], protos, self.distance, self.scale),
                                 self.fake_logit)  # (n_query_total, n_way + 1)
        noise = torch.randn(n_way * self.n_fake, self.z_dim).to(protos)  # torch's generator: saved by the loop
        fakes = self.generator(protos.detach().repeat_interleave(self.n_fake, 0), noise)  # (n_way * m, 1, 28, 28)
        with running_statistics(self.backbone):  # fakes never enter the running statistics used at test time
            z_fake = self.embed(fakes)  # (n_way * m, D)
            with torch.no_grad():
                z_real = self.embed(episode.query_x)  # (n_query_total, D): the same normalisation as the fakes
        fake_logits = with_fake_class(protonet_logits(z_fake, protos, self.distance, self.scale),
                                      self.fake_logit)  # (n_way * m, n_way + 1)
        log_p_fake = F.log_softmax(fake_logits, 1)[:, -1]  # (n_way * m,)
        loss_d = F.cross_entropy(logits, episode.query_y) - self.fake_weight * log_p_fake.mean()
        if self.generator_loss == "feature-matching":  # Salimans et al. 2016, as in MetaGAN
            loss_g = (z_real.mean(0) - z_fake.mean(0)).pow(2).sum()
        else:  # non-saturating: -log(1 - p(fake)) = -(logsumexp over the classes - logsumexp over all)
            loss_g = (torch.logsumexp(fake_logits, 1) - torch.logsumexp(fake_logits[:, :-1], 1)).mean()
        accuracy = (logits[:, :n_way].argmax(1) == episode.query_y).float().mean()
        return loss_d, loss_g, accuracy

    def train_step(self, batch, optimizer) -> dict:
        """One step: the classifier (backbone, fake logit) descends ``L_D``, the generator ``L_G``; one optimizer."""
        optimizer.zero_grad(set_to_none=True)
        loss_d, loss_g, accs = (torch.stack(v).mean() for v in zip(*(self.discriminate(ep) for ep in batch)))  # each (meta_batch,) -> scalar
        disc = [p for n, p in self.named_parameters() if not n.startswith("generator.")]
        gen = list(self.generator.parameters())
        for p, g in zip(disc + gen, torch.autograd.grad(loss_d, disc, retain_graph=True)
                        + torch.autograd.grad(loss_g, gen)):
            p.grad = g
        optimizer.step()
        return {"loss": loss_d.item(), "accuracy": accs.item(), "generator_loss": loss_g.item()}

    def config(self) -> dict:
        return {**super().config(), "n_fake": self.n_fake, "fake_weight": self.fake_weight, "z_dim": self.z_dim,
                "hidden": self.hidden, "generator_loss": self.generator_loss}

    RECIPES = {name: r.replace(model={"n_fake": 1}, note=r.note + "; MetaGAN: one generated drawing per class, "
                               "a fake class") for name, r in ProtoNet.RECIPES.items()}
