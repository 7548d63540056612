"""Training the DAGAN (with a NaN/divergence guard) and the hallucinator; generators ``"gan"`` and ``"gan-feature"``.

Taught in ``notebooks/07_gan_augmentation.ipynb``. ``checkpoints/gan-quick.pt`` holds two pixel
generators trained with the same step budget, ``"wgan-gp"`` and ``"standard"`` (the mode-collapse
comparison), each with its training curves and diversity history, and one
:class:`~fslcourse.generative.hallucinator.FeatureHallucinator` per backbone fingerprint.
Train it with ``python benchmarks/train_gan.py`` (the quick recipe below).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data.episodes import EpisodeSampler
from ..io import atomic_torch_save, load_checkpoint
from ..methods.protonet import protonet_logits
from .augment import backbone_fingerprint, register_generator
from .gan import DAGANGenerator, PairCritic, critic_loss, generator_loss, make_pair
from .hallucinator import FeatureHallucinator, train_hallucinator
from .metrics import mean_pairwise_distance
from .vae_generator import FeatureSplit, embed_split

CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "gan-{profile}.pt"
RECIPES = {"quick": {"pixel": dict(steps=600, n_classes=32, n_critic=2, lr=3e-4, eval_every=50, mismatch=True),
                     "feature": dict(steps=1500, n_way=20, lr=1e-3, max_classes=1024)},
           "full": {"pixel": dict(steps=20000, n_classes=64, n_critic=5, lr=1e-4, eval_every=500),
                    "feature": dict(steps=10000, n_way=20, lr=1e-3, max_classes=4000)}}


class GANDiverged(RuntimeError):
    """Training stopped because a loss became NaN/inf or diverged; ``last_good_step`` was kept on disk."""

    def __init__(self, message: str, step: int, last_good_step: int | None):
        super().__init__(message)
        self.step, self.last_good_step = step, last_good_step


@torch.no_grad()
def quality(gen: DAGANGenerator, backbone, split, n_classes: int = 10, n_generated: int = 10, seed: int = 0) -> dict:
    """Diversity and class faithfulness of generated drawings in ``backbone``'s feature space.

    For ``n_classes`` seeded classes of ``split``, one source drawing each and ``n_generated`` z:
    ``diversity_generated`` / ``diversity_real`` (mean over classes of the mean pairwise feature distance
    of the generated drawings / of the class's real drawings), their ``diversity_ratio``, and
    ``faithful``: % of generated drawings whose nearest real-class prototype is their source's class.
    """
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


def train_gan(gen: DAGANGenerator, critic: PairCritic, train_split, *, loss: str = "wgan-gp", steps: int = 1500,
              n_classes: int = 32, n_critic: int = 2, lr: float = 2e-4, gp_weight: float = 10.0, seed: int = 0,
              backbone=None, val_split=None, eval_every: int = 100, checkpoint: str | Path | None = None,
              checkpoint_every: int = 100, divergence: float = 1e4, callback=None, mismatch: bool = False,
              progress: bool = True) -> dict:
    """Train a DAGAN on pairs of drawings of meta-train characters, refusing to train on through a NaN.

    Each critic step draws ``n_classes`` characters and 2 drawings of each: real pairs (source, other
    drawing), fake pairs (source, ``G(source, z)``); each generator step follows ``n_critic`` critic steps.
    ``mismatch=True`` also shows the critic (source, real drawing of *another* character) as fake, as
    in the matching-aware discriminator of Reed et al. 2016 (arXiv:1605.05396), so that it checks the class.
    Every ``eval_every`` steps, :func:`quality` on ``val_split`` (given a ``backbone``) is recorded.

    Guard: if a loss is NaN/inf or its magnitude exceeds ``divergence``, raise :class:`GANDiverged`
    naming the step and the loss. ``checkpoint`` (if given) is written atomically every
    ``checkpoint_every`` steps, only while every loss and weight is finite, so the last good one is kept.
    ``callback(step, gen, critic)`` runs after each step (tests inject a NaN with it).

    Returns:
        History dict: ``step``, ``loss_d``, ``loss_g``, ``d_real``, ``d_fake`` (and ``gp``, ``wasserstein``
        for WGAN-GP), ``eval_step`` and the :func:`quality` keys, ``seconds``, ``steps``, ``split``.
    """
    sampler = EpisodeSampler(train_split, n_classes, 1, 1, seed=seed)
    g = torch.Generator().manual_seed(seed)
    betas = (0.5, 0.9) if loss == "wgan-gp" else (0.5, 0.999)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(critic.parameters(), lr=lr, betas=betas)
    hist: dict = {"step": [], "loss_d": [], "loss_g": [], "d_real": [], "d_fake": [], "eval_step": []}
    dev = next(gen.parameters()).device
    last_good, start = None, time.perf_counter()

    def guard(step: int, name: str, value: float) -> None:
        if not (abs(value) < divergence):  # False for NaN and inf too
            kept = f"the last good checkpoint (step {last_good}) is kept in {checkpoint}" if last_good else \
                "no checkpoint was written"
            fix = "use loss='wgan-gp', " if loss != "wgan-gp" else ""
            raise GANDiverged(f"{name} = {value} at step {step} ({loss} loss, lr={lr}): training stopped; {kept}. "
                              f"Lower lr, {fix}or use a spectral-normalised critic (spectral=True)", step, last_good)

    for step in tqdm(range(1, steps + 1), desc=f"training DAGAN ({loss})", disable=not progress):
        gen.train()
        for _ in range(n_critic):
            ep = sampler.sample().to(dev)
            z = torch.randn(n_classes, gen.z_dim, generator=g).to(dev)
            fake = gen(ep.support_x, z).detach()  # (n_classes, 1, 28, 28)
            real, fake = make_pair(ep.support_x, ep.query_x), make_pair(ep.support_x, fake)  # (n_classes, 2, 28, 28)
            if mismatch:  # (source, a drawing of the next character) is fake too
                real = torch.cat([real, real])  # (2 * n_classes, 2, 28, 28)
                fake = torch.cat([fake, make_pair(ep.support_x, ep.query_x.roll(1, 0))])
            loss_d, stats = critic_loss(critic, real, fake, loss, gp_weight, g)
            guard(step, "critic loss", loss_d.item())
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        z = torch.randn(n_classes, gen.z_dim, generator=g).to(dev)
        loss_g = generator_loss(critic, make_pair(ep.support_x, gen(ep.support_x, z)), loss)
        guard(step, "generator loss", loss_g.item())
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        hist["step"].append(step)
        hist["loss_d"].append(loss_d.item())
        hist["loss_g"].append(loss_g.item())
        for key, value in stats.items():
            hist.setdefault(key, []).append(value)
        if backbone is not None and val_split is not None and (step % eval_every == 0 or step == 1):
            hist["eval_step"].append(step)
            for key, value in quality(gen.eval(), backbone, val_split, seed=seed).items():
                hist.setdefault(key, []).append(value)
        if callback is not None:
            callback(step, gen, critic)
        finite = all(torch.isfinite(p).all() for m in (gen, critic) for p in m.state_dict().values())
        if checkpoint is not None and step % checkpoint_every == 0 and finite:
            atomic_torch_save({"generator": gen.state_dict(), "critic": critic.state_dict(), "step": step,
                               "config": gen.config(), "critic_config": critic.config(), "loss": loss}, checkpoint)
            last_good = step
    gen.eval()
    hist.update(seconds=time.perf_counter() - start, steps=steps, split=train_split.name)
    return hist


@dataclass
class GANGenerator:
    """A DAGAN generator or a feature hallucinator behind the augmentation interface."""

    model: torch.nn.Module
    space: str = "pixel"
    backbone_fingerprint: str | None = None

    def generate(self, support, support_y, n_generated: int, generator: torch.Generator | None = None):
        """``(generated (n_way * m, ...), labels (n_way * m,))`` from the support images or features."""
        return self.model.generate(support, support_y, n_generated, generator)


def load_or_train_gans(data, backbone=None, profile: str = "quick", seed: int = 0, device=None,
                       progress: bool = True, path: str | Path | None = None, save: bool = True) -> dict:
    """The pixel DAGANs (``"wgan-gp"``, ``"standard"``) and, given a backbone, its hallucinator; trains what is missing.

    Returns:
        ``{"wgan-gp": DAGANGenerator, "standard": DAGANGenerator, "feature": FeatureHallucinator or None,
        "checkpoint": dict, "trained": [names], "fingerprint": str or None}``.
    """
    from ..config import get_device, get_profile
    from ..results import versions

    device, name = get_device(device), get_profile(profile).name
    path = Path(path) if path is not None else Path(str(CHECKPOINT).format(profile=name))
    ckpt = load_checkpoint(path) if path.exists() else {"format": 1, "profile": name, "pixel": {}}
    out, trained = {"feature": None, "fingerprint": None}, []
    for loss in ("wgan-gp", "standard"):
        if loss not in ckpt["pixel"]:
            torch.manual_seed(seed)
            gen, critic = DAGANGenerator().to(device), PairCritic().to(device)
            recipe = RECIPES[name]["pixel"]
            hist = train_gan(gen, critic, data.train, loss=loss, seed=seed, backbone=backbone, val_split=data.val,
                             progress=progress, **recipe)
            metrics = quality(gen, backbone, data.test, seed=seed) if backbone is not None else {}
            ckpt["pixel"][loss] = {"config": gen.config(), "critic_config": critic.config(), "loss": loss,
                                   "recipe": recipe, "state_dict": {k: v.cpu() for k, v in gen.state_dict().items()},
                                   "seed": seed, "train_seconds": hist["seconds"], "history": hist,
                                   "metrics": metrics, "metrics_backbone": backbone_fingerprint(backbone)
                                   if backbone is not None else None}
            trained.append(loss)
        entry = ckpt["pixel"][loss]
        out[loss] = DAGANGenerator(**entry["config"])
        out[loss].load_state_dict(entry["state_dict"])
        out[loss] = out[loss].to(device).eval()
    if backbone is not None:
        fp = out["fingerprint"] = backbone_fingerprint(backbone)
        features = ckpt.setdefault("feature", {})
        if fp not in features:
            recipe = dict(RECIPES[name]["feature"])
            ids = torch.randperm(data.train.n_classes, generator=torch.Generator().manual_seed(seed))
            feats = embed_split(backbone, data.train, ids[:recipe.pop("max_classes")])  # (n_classes, 20, D)
            torch.manual_seed(seed)
            model = FeatureHallucinator(feature_dim=feats.shape[-1]).to(feats.device)
            model.scale.fill_(feats.pow(2).mean().sqrt().item())
            hist = train_hallucinator(model, FeatureSplit(data.train.name, feats), seed=seed, progress=progress,
                                      **recipe)
            features[fp] = {"config": model.config(), "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                            "seed": seed, "train_seconds": hist["seconds"], "history": hist, "recipe": recipe}
            trained.append("feature")
        out["feature"] = FeatureHallucinator(**features[fp]["config"])
        out["feature"].load_state_dict(features[fp]["state_dict"])
        out["feature"] = out["feature"].to(device).eval()
    if trained and save:
        ckpt["versions"] = versions()
        atomic_torch_save(ckpt, path)
    return {**out, "checkpoint": ckpt, "trained": trained}


@register_generator("gan")
def build_gan(data, *, backbone=None, profile: str = "quick", device=None, seed: int = 0, progress: bool = False):
    """The WGAN-GP DAGAN in pixel space."""
    return GANGenerator(load_or_train_gans(data, None, profile, seed, device, progress)["wgan-gp"])


@register_generator("gan-feature")
def build_gan_feature(data, *, backbone=None, profile: str = "quick", device=None, seed: int = 0,
                      progress: bool = False):
    """The feature hallucinator trained for ``backbone``."""
    if backbone is None:
        raise ValueError("the 'gan-feature' generator needs the method's backbone; use a method with .backbone "
                         "(protonet, finetune) or the pixel generator 'gan'")
    gans = load_or_train_gans(data, backbone, profile, seed, device, progress)
    return GANGenerator(gans["feature"], space="feature", backbone_fingerprint=gans["fingerprint"])
