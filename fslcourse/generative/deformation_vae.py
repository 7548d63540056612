"""A VAE over deformations of the support drawing: new drawings of a character that keep its strokes.

Taught in ``notebooks/07_vae_augmentation.ipynb``.

The conditional VAE of :mod:`.vae` decodes every pixel independently, so where a stroke may
sit in several places it draws all of them faintly: a blur that a classifier does not
recognise. This model carries the support drawing's structure instead. A context encoder
reads the support drawing :math:`s` (as in the Neural Statistician, Edwards & Storkey 2016,
arXiv:1606.02185, and the variational homoencoder, Hewitt et al. 2018, arXiv:1807.08919, where
a new example of a class is generated from other examples of it); the decoder maps
:math:`(z, \\mathrm{ctx}(s))` to a *deformation*, an affine map plus a smooth displacement field
on a 7×7 grid, and the output is :math:`s` warped by it (the deforming autoencoder's idea,
Shu et al. 2018, arXiv:1806.06503). The likelihood is Bernoulli with logits
:math:`g\\,(2\\,\\mathrm{warp}(s) - 1)`, and the loss the negative ELBO,

.. math:: -\\mathbb E_{q(z\\mid x, s)}[\\log p(x \\mid z, s)] + \\beta\\,\\mathrm{KL}(q(z \\mid x, s)\\,\\|\\,\\mathcal N(0, I)),

trained on pairs (source :math:`s`, target :math:`x`) of two drawings of one meta-train character
by two people: :math:`z` learns how one hand differs from another. A sample is the support
drawing under a deformation :math:`z \\sim \\mathcal N(0, I)`, so it is always that character.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import modes_kept
from ..recipe import Recipe
from .augment import check_request, sources_in_turn
from .vae import kl_to_standard_normal, reparameterise

# The ``vae`` trainer: each step draws ``n_way`` meta-train characters, one source and ``n_query`` targets
# each; Adam, constant rate. quick: a 2-core CPU in about 3 minutes; full: a longer run for a GPU.
RECIPES = {"quick": Recipe(trainer="vae", steps=3000, lr=1e-3, n_way=16, n_shot=1, n_query=5, val_every=250,
                           val_episodes=1, val_n_way=16, val_n_shot=1, val_n_query=5, options={"keep": "last"}),
           "full": Recipe(trainer="vae", steps=30_000, lr=5e-4, n_way=64, n_shot=1, n_query=5, val_every=1000,
                          val_episodes=1, val_n_way=64, val_n_shot=1, val_n_query=5, options={"keep": "last"})}
RECIPES["paper"] = RECIPES["full"].replace(note="the course's own model, with no paper recipe: its full recipe")


def warp(source: torch.Tensor, params: torch.Tensor, grid: int) -> torch.Tensor:
    """``source`` ``(n, 1, H, W)`` under the deformation ``params`` ``(n, 6 + 2 * grid^2)``; ``(n, 1, H, W)``.

    The first 6 numbers change the identity affine map (scaled by 0.1), the others are a displacement
    field on a ``grid`` × ``grid`` lattice (scaled by 0.1, in the [-1, 1] coordinates of
    ``grid_sample``), bicubically upsampled to the image: all zeros is the identity.
    """
    n = len(params)
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=params.device, dtype=params.dtype)
    theta = identity + 0.1 * params[:, :6].view(n, 2, 3)  # (n, 6) -> (n, 2, 3): the affine part
    field = params[:, 6:].view(n, 2, grid, grid)  # (n, 2 * grid^2) -> (n, 2, grid, grid)
    field = F.interpolate(field, size=source.shape[-2:], mode="bicubic", align_corners=False)  # (n, 2, H, W)
    coords = F.affine_grid(theta, list(source.shape), align_corners=False) + 0.1 * field.permute(0, 2, 3, 1)  # (n, H, W, 2)
    return F.grid_sample(source, coords, align_corners=False)  # coords: (n, H, W, 2)


def context_encoder(c_in: int, hidden: int) -> nn.Sequential:
    """``(n, c_in, 28, 28) -> (n, 256)``."""
    return nn.Sequential(nn.Conv2d(c_in, hidden, 4, 2, 1), nn.ReLU(),  # 28 -> 14
                         nn.Conv2d(hidden, 2 * hidden, 4, 2, 1), nn.ReLU(),  # 14 -> 7
                         nn.Flatten(), nn.Linear(2 * hidden * 49, 256), nn.ReLU())  # (n, 2h*7*7) -> (n, 256)


class DeformationVAE(nn.Module):
    """New drawings as learned deformations of a support drawing (see the module docstring).

    Args:
        z_dim: latent dimension (how one hand differs from another).
        hidden: channels of the encoders' first convolution (the second has twice as many).
        grid: the displacement field's control points per side (bicubically upsampled: a smooth field).
        beta: weight of the KL term (1 = the ELBO).
    """

    def __init__(self, z_dim: int = 16, hidden: int = 32, grid: int = 7, beta: float = 1.0):
        super().__init__()
        self.z_dim, self.hidden, self.grid, self.beta = z_dim, hidden, grid, float(beta)
        self.context = context_encoder(1, hidden)  # ctx(s)
        self.pair_encoder = context_encoder(2, hidden)  # reads (x, s) for q(z | x, s)
        self.to_posterior = nn.Linear(512, 2 * z_dim)
        self.decoder = nn.Sequential(nn.Linear(z_dim + 256, 256), nn.ReLU(), nn.Linear(256, 6 + 2 * grid * grid))
        nn.init.zeros_(self.decoder[-1].weight)  # starts as the identity deformation: a copy of s
        nn.init.zeros_(self.decoder[-1].bias)
        self.gain = nn.Parameter(torch.tensor(4.0))  # the Bernoulli logits' sharpness

    def encode(self, x: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z | x, s)``: ``(mu, logvar)``, each ``(n, z_dim)``, for targets and sources ``(n, 1, 28, 28)``."""
        h = torch.cat([self.pair_encoder(torch.cat([x, source], 1)), self.context(source)], 1)  # (n, 512)
        mu, logvar = self.to_posterior(h).chunk(2, dim=1)
        return mu, logvar.clamp(-10.0, 6.0)

    def deform(self, source: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``source`` ``(n, 1, H, W)`` warped by the deformation decoded from ``z`` ``(n, z_dim)``; ``(n, 1, H, W)``."""
        return warp(source, self.decoder(torch.cat([z, self.context(source)], 1)), self.grid)

    def loss(self, x: torch.Tensor, source: torch.Tensor, generator: torch.Generator | None = None):
        """Negative ELBO per pair, averaged, and ``{"loss", "recon", "kl", "elbo"}`` in nats per drawing."""
        mu, logvar = self.encode(x, source)
        z = reparameterise(mu, logvar, generator)
        logits = self.gain * (2 * self.deform(source, z) - 1)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)  # (n, 784) -> (n,)
        kl = kl_to_standard_normal(mu, logvar)
        loss = (recon + self.beta * kl).mean()
        return loss, {"loss": loss.item(), "recon": recon.mean().item(), "kl": kl.mean().item(),
                      "elbo": -(recon + kl).mean().item()}

    def train_step(self, batch: dict, optimizer) -> dict:
        """One ELBO step on ``batch["episode"]`` (meta-train): each class's first support drawing is the source
        of its query drawings; ``batch["generator"]`` draws the latent noise."""
        ep = batch["episode"]
        sources = ep.support_x[::ep.n_shot][ep.query_y]  # (n_query_total, 1, 28, 28): one source per class
        loss, stats = self.loss(ep.query_x, sources, batch["generator"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return stats

    @torch.no_grad()
    def generate(self, support_x: torch.Tensor, support_y: torch.Tensor, n_generated: int,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n_generated`` deformations per class, each of a support drawing of its class (in turn).

        Args:
            support_x: ``(n_way * n_shot, 1, 28, 28)``; support_y: ``(n_way * n_shot,)`` in ``0 .. n_way-1``.
            generator: CPU ``torch.Generator`` for ``z``.

        Returns:
            ``(generated (n_way * n_generated, 1, 28, 28) in [0, 1], labels (n_way * n_generated,))``, class-major.
        """
        check_request(support_x, support_y, n_generated, name="n_generated")
        sources, labels = sources_in_turn(support_x, support_y, n_generated)  # (n_way * m, 1, 28, 28), (n_way * m,)
        z = torch.randn(len(sources), self.z_dim, generator=generator).to(sources)
        with modes_kept(self):
            out = self.eval().deform(sources, z)
        return out.clamp(0, 1), labels

    def config(self) -> dict:
        return {"z_dim": self.z_dim, "hidden": self.hidden, "grid": self.grid, "beta": self.beta}


@torch.no_grad()
def heldout_elbo(model: DeformationVAE, episode, seed: int = 0) -> dict:
    """ELBO (nats per drawing, one sample of z) of an episode's queries with their class's first support as source."""
    model.eval()
    sources = episode.support_x[::episode.n_shot][episode.query_y]  # (n_query_total, 1, 28, 28)
    _, stats = model.loss(episode.query_x, sources, torch.Generator().manual_seed(seed))
    return {k: stats[k] for k in ("elbo", "recon", "kl")}
