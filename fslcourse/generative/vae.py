"""A conditional VAE that generates extra support examples of a new class (pixels or backbone features).

Taught in ``notebooks/07_vae_augmentation.ipynb``.

Kingma & Welling (2013), "Auto-Encoding Variational Bayes", arXiv:1312.6114: an
encoder :math:`q_\\phi(z\\mid x, c) = \\mathcal N(\\mu, \\mathrm{diag}\\,\\sigma^2)`, the
reparameterisation :math:`z = \\mu + \\sigma \\odot \\varepsilon`, a Bernoulli decoder
:math:`p_\\theta(x\\mid z, c)`, and the loss
:math:`-\\mathrm{ELBO} = -\\mathbb E_q[\\log p_\\theta(x\\mid z, c)] + \\beta\\,\\mathrm{KL}(q\\,\\|\\,\\mathcal N(0, I))`
(β-VAE: Higgins et al. 2017, ICLR). The condition :math:`c` is a *class context*: the mean
of a learned embedding of a few other drawings of the same character (Sohn et al. 2015,
"conditional VAE", NeurIPS; Edwards & Storkey 2016, "Towards a Neural Statistician",
arXiv:1606.02185), so that at test time a novel class is described by its support set.
Two ways to generate for a support set: ``"prior"`` samples :math:`z \\sim \\mathcal N(0, I)`;
``"prototype"`` encodes the K support images, takes their mean latent
:math:`\\bar z` as the class prototype and samples :math:`z \\sim \\mathcal N(\\bar z, s^2 I)`
with ``s`` the within-class spread of :math:`\\mu` measured on meta-train classes.
:class:`FeatureVAE` is the same model on backbone features (a Gaussian decoder), as in
feature-space hallucination (Hariharan & Girshick 2017, arXiv:1606.02819; Xian et al. 2019,
f-VAEGAN-D2, arXiv:1903.10132).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..methods.base import n_way_of, prototypes
from ..recipe import Recipe

MODES = ("prior", "prototype")

# Training (the ``vae`` trainer of :mod:`fslcourse.training`): each step draws ``n_way`` meta-train classes
# with ``n_shot`` context and ``n_query`` target drawings; Adam, constant rate. quick: a 2-core CPU (the
# pixel model about 4 minutes, the feature model a few seconds); full: longer runs for a GPU.
_PIXEL = Recipe(trainer="vae", steps=1200, lr=2e-3, n_way=16, n_shot=5, n_query=5, val_every=100, val_episodes=1,
                val_n_way=16, val_n_shot=5, val_n_query=5, model={}, options={"keep": "last"})
RECIPES = {
    "quick": {"pixel": _PIXEL,
              "feature": _PIXEL.replace(steps=2000, n_way=64, options={"max_classes": 1024}, val_n_way=64)},
    "full": {"pixel": _PIXEL.replace(steps=20_000, lr=1e-3, n_way=64, val_n_way=64),
             "feature": _PIXEL.replace(steps=20_000, lr=1e-3, n_way=64, val_n_way=64)},
}
RECIPES["paper"] = {space: r.replace(note="Kingma & Welling 2013 (arXiv:1312.6114) give no few-shot Omniglot recipe: the "
                                         "course's full recipe (a VAE conditioned on a class's drawings)")
                    for space, r in RECIPES["full"].items()}


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Closed-form :math:`\\mathrm{KL}(\\mathcal N(\\mu, \\sigma^2) \\| \\mathcal N(0, I)) = \\tfrac12\\sum(\\mu^2 + \\sigma^2 - 1 - \\log\\sigma^2)`.

    Args:
        mu, logvar: ``(n, z_dim)``.

    Returns:
        ``(n,)`` KL in nats.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` drawn from a CPU ``generator``; ``(n, z_dim)``."""
    eps = torch.randn(mu.shape, generator=generator).to(mu)
    return mu + (0.5 * logvar).exp() * eps


class _CVAEBase(nn.Module):
    """What the pixel and feature models share: context, ELBO and generation."""

    z_dim: int
    beta: float

    def context(self, x: torch.Tensor, y: torch.Tensor, n_way: int) -> torch.Tensor:
        """Class contexts: mean of ``context_net`` over each class's examples; ``(n_way, context_dim)``."""
        return prototypes(self.context_net(self.trunk(x)), y, n_way)

    def encode(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z|x, c)``: ``(mu, logvar)``, each ``(n, z_dim)``, for ``x`` and per-example contexts ``c`` ``(n, C)``."""
        mu, logvar = self.encoder_head(torch.cat([self.trunk(x), c], 1)).chunk(2, dim=1)
        return mu, logvar.clamp(-10.0, 6.0)

    def elbo_terms(self, x: torch.Tensor, c: torch.Tensor, generator: torch.Generator | None = None):
        """Per-example reconstruction term ``-log p(x|z,c)`` and KL, both ``(n,)`` nats (one sample of z)."""
        mu, logvar = self.encode(x, c)
        z = reparameterise(mu, logvar, generator)
        return self.reconstruction_nll(self.decode(z, c), x), kl_to_standard_normal(mu, logvar)

    def loss(self, x: torch.Tensor, c: torch.Tensor, generator: torch.Generator | None = None):
        """``(recon + beta * KL).mean()`` and a dict of the mean ``recon``, ``kl`` and ``elbo`` (nats per example)."""
        recon, kl = self.elbo_terms(x, c, generator)
        loss = (recon + self.beta * kl).mean()
        return loss, {"loss": loss.item(), "recon": recon.mean().item(), "kl": kl.mean().item(),
                      "elbo": -(recon + kl).mean().item()}

    @torch.no_grad()
    def generate(self, support: torch.Tensor, support_y: torch.Tensor, n_generated: int,
                 generator: torch.Generator | None = None, mode: str = "prototype", spread: float | None = None):
        """``n_generated`` new examples per class of a support set.

        Args:
            support: ``(n_way * n_shot, ...)`` support images (or features for :class:`FeatureVAE`).
            support_y: ``(n_way * n_shot,)`` labels in ``0 .. n_way-1``.
            n_generated: examples per class (m).
            generator: CPU ``torch.Generator`` for the latent samples.
            mode: ``"prior"`` (z ~ N(0, I)) or ``"prototype"`` (z ~ N(mean support latent, spread^2 I)).
            spread: std of the prototype samples (default the learned ``within_class_std``).

        Returns:
            ``(generated (n_way * n_generated, ...), labels (n_way * n_generated,))``, class-major;
            pixels are the decoder's Bernoulli means in ``[0, 1]``.
        """
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not known; use one of {', '.join(MODES)}")
        n_way = n_way_of(support_y)
        c = self.context(support, support_y, n_way)  # (n_way, context_dim)
        labels = torch.arange(n_way, device=support.device).repeat_interleave(n_generated)  # (n_way * m,)
        eps = torch.randn(n_way * n_generated, self.z_dim, generator=generator).to(c)
        if mode == "prior":
            z = eps
        else:
            mu, _ = self.encode(support, c[support_y])
            s = float(self.within_class_std) if spread is None else float(spread)
            z = prototypes(mu, support_y, n_way)[labels] + s * eps  # (n_way * m, z_dim)
        return self.mean_output(self.decode(z, c[labels])), labels

    def train_step(self, batch: dict, optimizer) -> dict:
        """One ELBO step on meta-train classes only.

        ``batch``: ``episode`` (``n_way`` classes, ``n_shot`` context and ``n_query`` target drawings
        each), ``k`` (the context of a class is the mean embedding of its first ``k`` context
        drawings, so 1-shot and 5-shot supports are both seen), ``featurise`` (images to the
        model's input) and ``generator`` (the latent noise). Returns ``loss``, ``recon``, ``kl``, ``elbo``.
        """
        ep, k, featurise = batch["episode"], batch["k"], batch["featurise"]
        n_classes, n_context = ep.n_way, ep.n_shot
        ctx_x = featurise(ep.support_x).unflatten(0, (n_classes, n_context))[:, :k].flatten(0, 1)  # (n_classes*k, ...)
        c = self.context(ctx_x, torch.arange(n_classes, device=ctx_x.device).repeat_interleave(k), n_classes)
        loss, stats = self.loss(featurise(ep.query_x), c[ep.query_y], batch["generator"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return stats

    @torch.no_grad()
    def estimate_spread(self, x: torch.Tensor, y: torch.Tensor, n_way: int) -> float:
        """The within-class spread of the posterior means: the root mean square, over every example and latent
        dimension, of ``mu`` minus its class's mean ``mu`` (sets ``within_class_std``, the prototype mode's ``s``)."""
        c = self.context(x, y, n_way)
        mu, _ = self.encode(x, c[y])
        centred = mu - prototypes(mu, y, n_way)[y]  # (n, z_dim)
        std = centred.pow(2).mean().sqrt().item()
        self.within_class_std.fill_(std)
        return std


class ConditionalVAE(_CVAEBase):
    """Conditional VAE on ``(n, 1, 28, 28)`` images with a Bernoulli decoder (Kingma & Welling 2013, arXiv:1312.6114).

    Args:
        z_dim: latent dimension.
        context_dim: size of the class context ``c``.
        hidden: channels of the first convolution (the second has twice as many).
        beta: weight of the KL term (1 = the ELBO).
    """

    def __init__(self, z_dim: int = 16, context_dim: int = 32, hidden: int = 32, beta: float = 1.0):
        super().__init__()
        self.z_dim, self.context_dim, self.hidden, self.beta = z_dim, context_dim, hidden, float(beta)
        h2 = 2 * hidden
        self.trunk = nn.Sequential(  # (n, 1, 28, 28) -> (n, 256)
            nn.Conv2d(1, hidden, 4, 2, 1), nn.ReLU(),  # 28 -> 14
            nn.Conv2d(hidden, h2, 4, 2, 1), nn.ReLU(),  # 14 -> 7
            nn.Flatten(), nn.Linear(h2 * 49, 256), nn.ReLU())  # (n, h2*7*7) -> (n, 256)
        self.context_net = nn.Linear(256, context_dim)
        self.encoder_head = nn.Linear(256 + context_dim, 2 * z_dim)
        self.decoder = nn.Sequential(
            nn.Linear(z_dim + context_dim, 256), nn.ReLU(), nn.Linear(256, h2 * 49), nn.ReLU(),
            nn.Unflatten(1, (h2, 7, 7)),  # (n, h2*49) -> (n, h2, 7, 7)
            nn.ConvTranspose2d(h2, hidden, 4, 2, 1), nn.ReLU(),  # 7 -> 14
            nn.ConvTranspose2d(hidden, 1, 4, 2, 1))  # 14 -> 28: Bernoulli logits
        self.register_buffer("within_class_std", torch.tensor(1.0))

    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``p(x|z, c)``: Bernoulli logits ``(n, 1, 28, 28)`` for ``z`` ``(n, z_dim)`` and ``c`` ``(n, C)``."""
        return self.decoder(torch.cat([z, c], 1))

    @staticmethod
    def reconstruction_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``-log p(x|z)`` of the Bernoulli decoder, summed over pixels: ``(n,)`` (grey pixels as soft targets)."""
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)  # (n, 784) -> (n,)

    @staticmethod
    def mean_output(logits: torch.Tensor) -> torch.Tensor:
        """The decoder's mean drawing ``(n, 1, 28, 28)``: the Bernoulli probabilities of its ``logits``."""
        return torch.sigmoid(logits)

    def config(self) -> dict:
        return {"z_dim": self.z_dim, "context_dim": self.context_dim, "hidden": self.hidden, "beta": self.beta}


class FeatureVAE(_CVAEBase):
    """The same conditional VAE on backbone features ``(n, D)``, with a unit-variance Gaussian decoder.

    Args:
        feature_dim: D, the backbone's output size.
        z_dim, context_dim, beta: as for :class:`ConditionalVAE`.
        hidden: width of the MLPs.
    """

    def __init__(self, feature_dim: int = 64, z_dim: int = 16, context_dim: int = 32, hidden: int = 128,
                 beta: float = 1.0):
        super().__init__()
        self.feature_dim, self.z_dim, self.context_dim, self.hidden, self.beta = (
            feature_dim, z_dim, context_dim, hidden, float(beta))
        self.register_buffer("scale", torch.tensor(1.0))  # features are divided by this (their RMS on meta-train)
        self.trunk_mlp = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU())
        self.context_net = nn.Linear(hidden, context_dim)
        self.encoder_head = nn.Linear(hidden + context_dim, 2 * z_dim)
        self.decoder = nn.Sequential(nn.Linear(z_dim + context_dim, hidden), nn.ReLU(), nn.Linear(hidden, feature_dim))
        self.register_buffer("within_class_std", torch.tensor(1.0))

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden units ``(n, hidden)`` of features ``x`` ``(n, D)``, divided by their meta-train RMS first."""
        return self.trunk_mlp(x / self.scale)

    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Mean of ``p(f|z, c)`` in scaled units: ``(n, D)``."""
        return self.decoder(torch.cat([z, c], 1))

    def reconstruction_nll(self, mean: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``-log N(x/scale; mean, I)`` up to a constant: ``0.5 * ||x/scale - mean||^2``, ``(n,)``."""
        return 0.5 * (x / self.scale - mean).pow(2).sum(1)

    def mean_output(self, mean: torch.Tensor) -> torch.Tensor:
        """The decoder's mean ``(n, D)`` back in the backbone's units (times the RMS ``scale``)."""
        return mean * self.scale

    def config(self) -> dict:
        return {"feature_dim": self.feature_dim, "z_dim": self.z_dim, "context_dim": self.context_dim,
                "hidden": self.hidden, "beta": self.beta}


@torch.no_grad()
def heldout_elbo(model: _CVAEBase, episode, featurise=None, seed: int = 0) -> dict:
    """ELBO and reconstruction error on an episode's query drawings, the class context from its support.

    Args:
        episode: an :class:`~fslcourse.data.Episode` (e.g. of meta-test classes).
        featurise: as in :func:`train_vae`.

    Returns:
        ``{"elbo", "recon", "kl"}`` per example: in nats for images (a Bernoulli decoder); for features, up
        to constants (the Gaussian decoder's ``-D/2 log 2π`` and the ``-D log scale`` of the scaled units are
        left out), so a feature VAE's figures compare only between runs on one backbone. ``"mse"``: the mean
        squared error of the reconstruction from the posterior mean (per pixel for images, per feature for features).
    """
    featurise = featurise or (lambda x: x)
    model.eval()
    c = model.context(featurise(episode.support_x), episode.support_y, episode.n_way)[episode.query_y]
    x = featurise(episode.query_x)
    recon, kl = model.elbo_terms(x, c, torch.Generator().manual_seed(seed))
    mu, _ = model.encode(x, c)
    target = x if isinstance(model, ConditionalVAE) else x / model.scale
    out = model.decode(mu, c)
    mse = ((torch.sigmoid(out) if isinstance(model, ConditionalVAE) else out) - target).pow(2).mean().item()
    return {"elbo": -(recon + kl).mean().item(), "recon": recon.mean().item(), "kl": kl.mean().item(),
            "mse": mse}


def latent_code(model: ConditionalVAE, x: torch.Tensor, y: torch.Tensor, n_way: int) -> torch.Tensor:
    """What the decoder sees for each image: ``[c_class, mu]``, ``(n, context_dim + z_dim)``."""
    with torch.no_grad():
        c = model.context(x, y, n_way)[y]  # (n, context_dim)
        mu, _ = model.encode(x, c)
    return torch.cat([c, mu], 1)
