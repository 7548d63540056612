"""A DAGAN-style conditional GAN: from one drawing of a character and noise, a new drawing of the same character.

Taught in ``notebooks/08_gan_augmentation.ipynb``.

Antoniou, Storkey & Edwards (2017), "Data Augmentation Generative Adversarial Networks",
arXiv:1711.04340. The generator :math:`G(x_s, z)` encodes a *source* drawing :math:`x_s` and,
with noise :math:`z \\sim \\mathcal N(0, I)`, decodes a new drawing (a U-Net-style skip keeps the
character's strokes, and the output is a residual on the source's own strokes). The critic
:math:`D` scores *pairs*: ``(source, another real drawing of the same character)`` is real,
``(source, G(source, z))`` is fake, so :math:`G` must stay in the source's class while varying it.
Two losses:

* ``"wgan-gp"`` (Gulrajani et al. 2017, arXiv:1704.00028):
  :math:`L_D = \\mathbb E[D(\\tilde x)] - \\mathbb E[D(x)]
  + \\lambda\\, \\mathbb E[(\\lVert\\nabla_{\\hat x} D(\\hat x)\\rVert_2 - 1)^2]`,
  :math:`\\hat x = \\epsilon x + (1 - \\epsilon)\\tilde x`, :math:`\\lambda = 10`;
  :math:`L_G = -\\mathbb E[D(\\tilde x)]`;
* ``"standard"``: the non-saturating GAN loss (Goodfellow et al. 2014, arXiv:1406.2661),
  :math:`L_D = -\\log\\sigma(D(x)) - \\log(1 - \\sigma(D(\\tilde x)))`, :math:`L_G = -\\log\\sigma(D(\\tilde x))`.

Spectral normalisation of the critic (Miyato et al. 2018, arXiv:1802.05957) is an option.
:class:`DAGAN` holds both players; :mod:`fslcourse.training` trains it with the one loop (and a guard
against NaN and divergence).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..methods.protonet import protonet_logits
from ..models import modes_kept
from ..recipe import Recipe
from .augment import sources_in_turn
from .deformation_vae import context_encoder, warp
from .metrics import mean_pairwise_distance

LOSSES = ("wgan-gp", "standard")

# The ``gan`` trainer: every step takes ``n_critic`` critic steps (each on ``n_way`` characters × 2 drawings)
# then one generator step; Adam with betas (0.5, 0.9) for WGAN-GP. quick: 600 steps on a 2-core CPU.
# A WGAN's drawings do not improve steadily: on the quick recipe validation recognisability peaks near step 150
# and then wanders, so the run keeps the step that drew the meta-validation characters best (``keep="best"``,
# scored on 40 of them: 10 were too few to tell steps apart). The standard-loss DAGAN keeps its last step, so
# notebook 08 shows where that loss ends (its mode collapse).
_OPTIONS = {"loss": "wgan-gp", "n_critic": 2, "gp_weight": 10.0, "mismatch": True, "divergence": 1e4}
_QUICK = Recipe(trainer="gan", steps=600, lr=3e-4, n_way=32, n_shot=1, n_query=1, val_every=50, val_episodes=1,
                val_n_way=10, optimizer_kwargs={"betas": (0.5, 0.9)}, options=_OPTIONS)
_FULL = Recipe(trainer="gan", steps=20_000, lr=1e-4, n_way=64, n_shot=1, n_query=1, val_every=500, val_episodes=1,
               val_n_way=10, optimizer_kwargs={"betas": (0.5, 0.9)},
               options={**_OPTIONS, "n_critic": 5, "mismatch": False})
RECIPES = {"quick": _QUICK.replace(val_n_way=40, options={"keep": "best"}),
           "full": _FULL.replace(val_n_way=40, options={"keep": "best"})}
# The paper's own Omniglot run (its code's train_omniglot_dagan.py with 3 inner generator layers, 5 inner critic
# layers, z of 100, dropout 0.5): its UResNet generator and densely connected critic (generative/uresnet.py), 32
# pairs a batch, 5 critic steps per generator step, Adam 1e-4 with betas (0, 0.9), pairs turned by equal quarter
# turns, WGAN-GP only; 200 epochs of int(900 characters x 20 drawings / 32) = 562 batches: 112,400 generator steps.
# Departures: the course's meta-train split; validation faithfulness logged every 2,500 steps; the gradient penalty
# is taken with respect to both drawings of a pair (its code: the generated one only). About 19 CPU-s a
# step on one thread (timed over a few steps, no stored record: ~590 CPU-hours), so a GPU run; resumable (train gan
# --recipe paper --resume).
_PAPER_WIDTHS = (64, 64, 128, 128)
RECIPES["paper"] = Recipe(trainer="gan", steps=112_400, lr=1e-4, n_way=32, n_shot=1, n_query=1, val_every=2500,
                          val_episodes=1, val_n_way=10, optimizer_kwargs={"betas": (0.0, 0.9)},
                          model={"generator": {"widths": _PAPER_WIDTHS, "inner": 3, "z_dim": 100, "dropout": 0.5},
                                 "critic": {"widths": _PAPER_WIDTHS, "inner": 5}},
                          options={**_OPTIONS, "n_critic": 5, "mismatch": False, "rotate": True,
                                   "generator": "uresnet", "critic": "dense", "losses": ("wgan-gp",)})
# The DAGAN with a deforming generator: its decoder starts as the identity (a copy of the source), so it needs a
# higher rate and more steps to learn to move strokes; each step is cheap (a small decoder). quick: ~7 CPU-minutes.
# It keeps its last step (no ``keep``): a generator that only moves strokes stays faithful as it trains.
RECIPES_DEFORMING = {"quick": _QUICK.replace(steps=2000, lr=1e-3, val_every=250, options={"generator": "deformation"}),
                     "full": _FULL.replace(options={"generator": "deformation"})}
RECIPES_DEFORMING["paper"] = RECIPES_DEFORMING["full"].replace(note="the course's own generator, with no paper "
                                                               "recipe: its full recipe")


class PairGenerator(nn.Module):
    """What every DAGAN generator shares: ``forward(source, z)`` and :meth:`generate` for support sets."""

    z_dim: int

    @torch.no_grad()
    def generate(self, support_x: torch.Tensor, support_y: torch.Tensor, n_generated: int,
                 generator: torch.Generator | None = None):
        """``n_generated`` drawings per class, each from a support drawing of its class (in turn) and a fresh ``z``.

        Args:
            support_x: ``(n_way * n_shot, 1, 28, 28)``; support_y: ``(n_way * n_shot,)`` in ``0 .. n_way-1``.
            generator: CPU ``torch.Generator`` for ``z``.

        Returns:
            ``(generated (n_way * n_generated, 1, 28, 28), labels (n_way * n_generated,))``, class-major.
        """
        sources, labels = sources_in_turn(support_x, support_y, n_generated)  # (n_way * m, 1, 28, 28), (n_way * m,)
        z = torch.randn(len(sources), self.z_dim, generator=generator).to(support_x)
        with modes_kept(self):
            out = self.eval()(sources, z)
        return out, labels


class DeformingGenerator(PairGenerator):
    """``G(x_s, z)``: the source drawing under a deformation decoded from ``z`` and the source itself.

    The DAGAN's adversarial game with a generator that can only *move* the source's strokes (an affine
    map and a smooth displacement field, :func:`~fslcourse.generative.deformation_vae.warp`; the deforming
    autoencoder's decoder, Shu et al. 2018, arXiv:1806.06503). The critic judges whether the move
    looks like another person's hand; the class cannot be lost.

    Args:
        z_dim: noise dimension; hidden: the context encoder's channels; grid: the displacement field's lattice.
    """

    def __init__(self, z_dim: int = 16, hidden: int = 32, grid: int = 7):
        super().__init__()
        self.z_dim, self.hidden, self.grid = z_dim, hidden, grid
        self.context = context_encoder(1, hidden)
        self.decoder = nn.Sequential(nn.Linear(z_dim + 256, 256), nn.ReLU(), nn.Linear(256, 6 + 2 * grid * grid))
        nn.init.zeros_(self.decoder[-1].weight)  # starts as the identity: a copy of the source
        nn.init.zeros_(self.decoder[-1].bias)

    def forward(self, source: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``source`` ``(n, 1, 28, 28)`` in ``[0, 1]`` and ``z`` ``(n, z_dim)`` -> ``(n, 1, 28, 28)`` in ``[0, 1]``."""
        return warp(source, self.decoder(torch.cat([z, self.context(source)], 1)), self.grid).clamp(0, 1)

    def config(self) -> dict:
        return {"z_dim": self.z_dim, "hidden": self.hidden, "grid": self.grid}


class DAGANGenerator(PairGenerator):
    """``G(x_s, z)``: a new ``(n, 1, 28, 28)`` drawing of the class of each source drawing.

    Args:
        z_dim: noise dimension.
        hidden: channels of the first convolution (the second has twice as many).
        code_dim: size of the source's code (the bottleneck before ``z`` is concatenated).
    """

    def __init__(self, z_dim: int = 16, hidden: int = 16, code_dim: int = 64):
        super().__init__()
        self.z_dim, self.hidden, self.code_dim = z_dim, hidden, code_dim
        h2 = 2 * hidden
        self.down1 = nn.Sequential(nn.Conv2d(1, hidden, 4, 2, 1), nn.LeakyReLU(0.2))  # 28 -> 14
        self.down2 = nn.Sequential(nn.Conv2d(hidden, h2, 4, 2, 1), nn.LeakyReLU(0.2))  # 14 -> 7
        self.to_code = nn.Sequential(nn.Flatten(), nn.Linear(h2 * 49, code_dim), nn.LeakyReLU(0.2))  # (n, h2*49)
        self.from_code = nn.Sequential(nn.Linear(code_dim + z_dim, h2 * 49), nn.ReLU(),
                                       nn.Unflatten(1, (h2, 7, 7)))  # (n, h2*49) -> (n, h2, 7, 7)
        self.up1 = nn.Sequential(nn.ConvTranspose2d(2 * h2 + z_dim, hidden, 4, 2, 1), nn.ReLU())  # 7 -> 14
        self.up2 = nn.ConvTranspose2d(2 * hidden + z_dim, 1, 4, 2, 1)  # 14 -> 28 (logits)
        self.source_gain = nn.Parameter(torch.tensor(3.0))  # logits start as a copy of the source's strokes

    def forward(self, source: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``source`` ``(n, 1, 28, 28)`` in ``[0, 1]`` and ``z`` ``(n, z_dim)`` -> ``(n, 1, 28, 28)`` in ``[0, 1]``."""
        h1 = self.down1(source)  # (n, hidden, 14, 14)
        h2 = self.down2(h1)  # (n, 2*hidden, 7, 7)
        d = self.from_code(torch.cat([self.to_code(h2), z], 1))  # (n, 2*hidden, 7, 7)
        z7 = z[:, :, None, None].expand(-1, -1, 7, 7)  # (n, z_dim) -> (n, z_dim, 7, 7): noise at every scale
        d = self.up1(torch.cat([d, h2, z7], 1))  # skip connection: (n, 4*hidden + z_dim, 7, 7) -> (n, hidden, 14, 14)
        z14 = z[:, :, None, None].expand(-1, -1, 14, 14)  # (n, z_dim, 14, 14)
        logits = self.up2(torch.cat([d, h1, z14], 1))  # (n, 2*hidden + z_dim, 14, 14) -> (n, 1, 28, 28)
        return torch.sigmoid(logits + self.source_gain * (2 * source - 1))  # a residual on the source's strokes

    def config(self) -> dict:
        return {"z_dim": self.z_dim, "hidden": self.hidden, "code_dim": self.code_dim}


class PairCritic(nn.Module):
    """``D(x_s, x)``: one score per pair ``(source, candidate)``, both ``(n, 1, 28, 28)``; higher means real.

    No batch norm (the gradient penalty is per example). ``spectral=True`` wraps every layer in
    spectral normalisation (Miyato et al. 2018, arXiv:1802.05957).
    """

    def __init__(self, hidden: int = 32, spectral: bool = False):
        super().__init__()
        self.hidden, self.spectral = hidden, spectral
        wrap = spectral_norm if spectral else (lambda m: m)
        h2 = 2 * hidden
        self.net = nn.Sequential(
            wrap(nn.Conv2d(2, hidden, 4, 2, 1)), nn.LeakyReLU(0.2),  # 28 -> 14
            wrap(nn.Conv2d(hidden, h2, 4, 2, 1)), nn.LeakyReLU(0.2),  # 14 -> 7
            wrap(nn.Conv2d(h2, h2, 3, 2, 1)), nn.LeakyReLU(0.2),  # 7 -> 4
            nn.Flatten(), wrap(nn.Linear(h2 * 16, 1)))  # (n, h2*4*4) -> (n, 1)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        """``pair`` ``(n, 2, 28, 28)`` (source and candidate as channels) -> ``(n,)`` scores."""
        return self.net(pair).squeeze(1)  # (n, 1) -> (n,)

    def config(self) -> dict:
        return {"hidden": self.hidden, "spectral": self.spectral}


def rotate_pairs(source: torch.Tensor, x: torch.Tensor, generator: torch.Generator | None = None):
    """The paper's augmentation: each pair, with probability 1/2, turned by the same k x 90 degrees (k in 0..3).

    Args:
        source, x: ``(n, 1, 28, 28)``, the pairs' two drawings.
        generator: CPU ``torch.Generator`` for the coin and ``k``.

    Returns:
        ``(source, x)``, both ``(n, 1, 28, 28)``.
    """
    turn = torch.rand(len(source), generator=generator) < 0.5
    k = torch.randint(0, 4, (len(source),), generator=generator) * turn  # (n,): quarter turns, 0 when not turned
    out = [torch.stack([torch.rot90(im, int(q), (1, 2)) for im, q in zip(t, k)]) for t in (source, x)]  # each (n, C, H, W)
    return out[0], out[1]


def make_pair(source: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Stack a source and a candidate as channels: ``(n, 1, 28, 28)`` x 2 -> ``(n, 2, 28, 28)``."""
    return torch.cat([source, x], 1)  # (n, 2, 28, 28)


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's penalty :math:`\\mathbb E[(\\lVert\\nabla_{\\hat x} D(\\hat x)\\rVert_2 - 1)^2]`.

    Evaluated at ``x̂ = eps * real + (1 - eps) * fake``, one ``eps`` per example.

    Args:
        critic: ``(n, ...) -> (n,)``.
        real, fake: critic inputs ``(n, ...)``.
        eps: ``(n,)`` interpolation weights in ``[0, 1]``.

    Returns:
        A scalar; differentiable in the critic's parameters (``create_graph=True``).
    """
    e = eps.reshape(-1, *([1] * (real.dim() - 1))).to(real)  # (n,) -> (n, 1, ..., 1)
    x_hat = (e * real.detach() + (1 - e) * fake.detach()).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()  # (n, ...) -> (n, prod) -> scalar


def critic_loss(critic, real: torch.Tensor, fake: torch.Tensor, loss: str = "wgan-gp", gp_weight: float = 10.0,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    """The critic's (discriminator's) loss on real ``(n, 2, 28, 28)`` and fake ``(n', 2, 28, 28)`` pairs; ``(loss, stats)``.

    ``loss`` is ``"wgan-gp"`` (``E[D(fake)] - E[D(real)] + gp_weight * GP``, the penalty's mixing drawn from
    ``generator``; needs ``n' = n``) or ``"standard"`` (binary cross-entropy with logits); it is a scalar.

    ``stats`` has ``d_real`` and ``d_fake`` (mean scores) and, for WGAN-GP, ``gp`` and
    ``wasserstein`` (the critic's estimate ``E[D(real)] - E[D(fake)]``).
    """
    d_real, d_fake = critic(real), critic(fake.detach())
    stats = {"d_real": d_real.mean().item(), "d_fake": d_fake.mean().item()}
    if loss == "wgan-gp":
        eps = torch.rand(len(real), generator=generator).to(real)
        gp = gradient_penalty(critic, real, fake, eps)
        stats.update(gp=gp.item(), wasserstein=stats["d_real"] - stats["d_fake"])
        return d_fake.mean() - d_real.mean() + gp_weight * gp, stats
    if loss == "standard":
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean(), stats
    raise ValueError(f"loss={loss!r} is not known; use one of {', '.join(LOSSES)}")


def generator_loss(critic, fake: torch.Tensor, loss: str = "wgan-gp") -> torch.Tensor:
    """``-E[D(fake)]`` (WGAN-GP) or the non-saturating ``-E[log sigmoid D(fake)]`` (standard): a scalar, from fake
    pairs ``(n, 2, 28, 28)``."""
    d_fake = critic(fake)
    if loss == "wgan-gp":
        return -d_fake.mean()
    if loss == "standard":
        return F.softplus(-d_fake).mean()
    raise ValueError(f"loss={loss!r} is not known; use one of {', '.join(LOSSES)}")


class DAGAN(nn.Module):
    """The generator and its pair critic as one module, so one loop trains, checkpoints and resumes both.

    Args:
        generator: a :class:`DAGANGenerator`.
        critic: a :class:`PairCritic`.
    """

    def __init__(self, generator: DAGANGenerator, critic: PairCritic):
        super().__init__()
        self.generator, self.critic = generator, critic

    def train_step(self, batch: dict, optimizer: dict) -> dict:
        """``n_critic`` critic steps, then one generator step.

        ``batch``: ``episodes`` (one per critic step: ``n_way`` characters, a source and a real drawing
        each), ``generator`` (noise and the gradient penalty's mixing), ``loss``, ``gp_weight`` and
        ``mismatch`` (also show the critic (source, a real drawing of *another* character) as fake, as
        in the matching-aware discriminator of Reed et al. 2016, arXiv:1605.05396). ``optimizer`` is
        ``{"generator": ..., "critic": ...}``. Returns ``loss_d``, ``loss_g`` and the critic's stats.
        """
        g, loss_name, gen = batch["generator"], batch["loss"], self.generator
        for ep in batch["episodes"]:
            n = len(ep.support_x)
            z = torch.randn(n, gen.z_dim, generator=g).to(ep.support_x.device)
            fake = gen(ep.support_x, z).detach()  # (n, 1, 28, 28)
            real, fake = make_pair(ep.support_x, ep.query_x), make_pair(ep.support_x, fake)  # (n, 2, 28, 28)
            if batch["mismatch"]:  # (source, a drawing of the previous character: roll(1)) is fake too
                real = torch.cat([real, real])  # (2n, 2, 28, 28)
                fake = torch.cat([fake, make_pair(ep.support_x, ep.query_x.roll(1, 0))])
            loss_d, stats = critic_loss(self.critic, real, fake, loss_name, batch["gp_weight"], g)
            optimizer["critic"].zero_grad(set_to_none=True)
            loss_d.backward()
            optimizer["critic"].step()
        z = torch.randn(n, gen.z_dim, generator=g).to(ep.support_x.device)
        loss_g = generator_loss(self.critic, make_pair(ep.support_x, gen(ep.support_x, z)), loss_name)
        optimizer["generator"].zero_grad(set_to_none=True)
        loss_g.backward()
        optimizer["generator"].step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), **stats}


@torch.no_grad()
def quality(gen: DAGANGenerator, backbone, split, n_classes: int = 10, n_generated: int = 10, seed: int = 0) -> dict:
    """Diversity and class faithfulness of generated drawings in ``backbone``'s feature space.

    For ``n_classes`` seeded classes of ``split``, one source drawing each and ``n_generated`` z:
    ``diversity_generated`` / ``diversity_real`` (mean over classes of the mean pairwise feature distance
    of the generated drawings / of the class's real drawings), their ``diversity_ratio``, and
    ``faithful``: % of generated drawings whose nearest real-class prototype is their source's class.
    The backbone measures in eval mode (its running statistics; its mode is given back afterwards), so that
    measuring never rewrites the batch-norm statistics of the method it belongs to.
    """
    with modes_kept(backbone):
        backbone.eval()
        return _quality(gen, backbone, split, n_classes, n_generated, seed)


def _quality(gen, backbone, split, n_classes: int, n_generated: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    classes = torch.randperm(split.n_classes, generator=g)[:n_classes]
    real = split.get(classes, torch.arange(split.n_examples)[None].expand(n_classes, -1))  # (n_cls, n_ex, 1, 28, 28)
    dev = next(gen.parameters()).device
    f_real = backbone(real.flatten(0, 1).to(dev)).unflatten(0, (n_classes, -1))  # (n_cls, n_ex, D)
    y = torch.arange(n_classes, device=dev)
    fake, fake_y = gen.generate(real[:, 0].to(dev), y, n_generated, g)  # (n_cls * m, 1, 28, 28)
    f_fake = backbone(fake)  # (n_cls * m, D)
    div_real = sum(mean_pairwise_distance(f) for f in f_real) / n_classes
    div_fake = sum(mean_pairwise_distance(f_fake[fake_y == k]) for k in range(n_classes)) / n_classes
    faithful = (protonet_logits(f_fake, f_real.mean(1)).argmax(1) == fake_y).float().mean().item()
    return {"diversity_generated": div_fake, "diversity_real": div_real, "diversity_ratio": div_fake / div_real,
            "faithful": 100 * faithful}
