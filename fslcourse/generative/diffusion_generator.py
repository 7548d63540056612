"""The conditional diffusion model as a support generator: load ``checkpoints/diffusion-quick.pt``, else train.

Taught in ``notebooks/08_diffusion_augmentation.ipynb``. Registers ``"diffusion"`` for
:mod:`fslcourse.generative.augment` (pixel space, DDIM sampling with classifier-free guidance).

The condition of a class is its **prototype in the ProtoNet backbone's feature space**: the
mean of the frozen backbone's features of its K support drawings. Training draws meta-train
characters only: for each, a prototype from K ∈ {1..5} drawings and ``n_target`` *other*
drawings to denoise. The checkpoint records the config, seed, training seconds and steps,
the split and class ids it trained on, the fingerprint of the conditioning backbone, and the
held-out denoising loss measured when it was saved. The training command is
``python benchmarks/train_diffusion.py`` (it calls :func:`load_or_train_diffusion`).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import get_device, get_profile
from ..io import atomic_torch_save, load_checkpoint
from ..methods.base import prototypes
from ..models.unet import UNet
from ..results import versions
from .augment import backbone_fingerprint, register_generator
from .diffusion import Schedule, diffusion_loss, q_sample, sample

CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "diffusion-{profile}.pt"
RECIPES = {  # a step budget, not a time budget: the 2-core machine is shared
    "quick": dict(steps=2000, n_classes=16, n_target=2, max_shot=5, lr=2e-3, p_uncond=0.15, ema=0.995,
                  schedule="cosine", T=200, model={"channels": 16}),
    "full": dict(steps=20000, n_classes=32, n_target=4, max_shot=5, lr=1e-3, p_uncond=0.15, ema=0.999,
                 schedule="cosine", T=500, model={"channels": 64}),
}


def class_conditions(encoder, x: torch.Tensor, y: torch.Tensor, n_way: int) -> torch.Tensor:
    """Prototypes of the support set in the encoder's feature space: ``(n_way * n_shot, 1, 28, 28) -> (n_way, D)``."""
    with torch.no_grad():
        return prototypes(encoder(x), y, n_way)


@torch.no_grad()
def heldout_loss(model, encoder, split, schedule: Schedule, n_classes: int = 16, n_shot: int = 5,
                 n_target: int = 5, seed: int = 0) -> dict:
    """Conditional denoising loss on fixed seeded drawings of ``split``, and the loss of predicting zero noise.

    Returns:
        ``{"loss": mean ||eps - eps_theta||^2, "zero_noise": mean ||eps||^2}`` per pixel (the same t and noise).
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.randperm(split.n_classes, generator=g)[:n_classes]
    ex = torch.stack([torch.randperm(split.n_examples, generator=g) for _ in ids])  # (n_classes, n_examples)
    device = next(model.parameters()).device
    x = split.get(ids, ex[:, : n_shot + n_target]).to(device)  # (n_classes, n_shot + n_target, 1, 28, 28)
    c = prototypes(encoder(x[:, :n_shot].flatten(0, 1)), torch.arange(n_classes, device=device).repeat_interleave(
        n_shot), n_classes).repeat_interleave(n_target, 0)  # (n_classes * n_target, D)
    x0 = 2 * x[:, n_shot:].flatten(0, 1) - 1  # (n_classes * n_target, 1, 28, 28)
    t = torch.randint(0, schedule.T, (len(x0),), generator=g).to(device)
    noise = torch.randn(x0.shape, generator=g).to(device)
    eps = model.eval()(q_sample(x0, t, noise, schedule.alpha_bar), t, c)
    return {"loss": (noise - eps).pow(2).mean().item(), "zero_noise": noise.pow(2).mean().item()}


def train_diffusion(model, encoder, split, schedule: Schedule, steps: int, n_classes: int = 16, n_target: int = 4,
                    max_shot: int = 5, lr: float = 2e-3, p_uncond: float = 0.15, ema: float = 0.995, seed: int = 0,
                    val_split=None, val_every: int = 250, progress: bool = True):
    """Train ε_θ on ``split`` (meta-train) for ``steps`` Adam steps; returns ``(ema_model, history)``.

    Each step draws ``n_classes`` characters; each gets a prototype from K ∈ {1..max_shot} drawings
    and ``n_target`` other drawings to denoise (batch ``n_classes * n_target``). The learning rate
    decays with a cosine; the returned model holds the exponential moving average of the weights.
    """
    g = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    encoder.eval()
    avg = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + torch.cos(
        torch.tensor(torch.pi * s / steps)).item()))
    hist = {"step": [], "loss": [], "val_step": [], "val_loss": [], "split": split.name, "steps": steps}
    seen = set()
    start = time.perf_counter()
    for step in tqdm(range(steps), disable=not progress, desc="diffusion"):
        model.train()
        ids = torch.randperm(split.n_classes, generator=g)[:n_classes]
        seen.update(ids.tolist())
        k = int(torch.randint(1, max_shot + 1, (1,), generator=g))
        ex = torch.stack([torch.randperm(split.n_examples, generator=g) for _ in ids])  # (n_classes, n_examples)
        x = split.get(ids, ex[:, : k + n_target]).to(device)  # (n_classes, k + n_target, 1, 28, 28)
        c = class_conditions(encoder, x[:, :k].flatten(0, 1), torch.arange(n_classes, device=device)
                             .repeat_interleave(k), n_classes).repeat_interleave(n_target, 0)  # (n_classes*n_target, D)
        loss = diffusion_loss(model, 2 * x[:, k:].flatten(0, 1) - 1, c, schedule, p_uncond, g)  # targets in [-1, 1]
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            for a, p in zip(avg.parameters(), model.parameters()):
                a.lerp_(p, 1 - ema)
        hist["step"].append(step)
        hist["loss"].append(loss.item())
        if val_split is not None and ((step + 1) % val_every == 0 or step + 1 == steps):
            hist["val_step"].append(step + 1)
            hist["val_loss"].append(heldout_loss(avg, encoder, val_split, schedule, seed=seed)["loss"])
    hist["seconds"] = time.perf_counter() - start
    hist["seen_classes"] = sorted(seen)
    return avg, hist


def load_or_train_diffusion(data, encoder, profile: str = "quick", seed: int = 0, device=None, progress: bool = True,
                            path: str | Path | None = None, save: bool = True, recipe: dict | None = None) -> dict:
    """The model from the checkpoint if it exists for this encoder, else trained on ``data.train`` only.

    Args:
        data: an object with ``train`` and ``val`` splits (``data.test`` is never read).
        encoder: the conditioning backbone (the ProtoNet backbone, frozen); its fingerprint is checked.
        recipe: overrides of ``RECIPES[profile]``.

    Returns:
        ``{"model": UNet (eval), "schedule": Schedule, "checkpoint": dict, "trained": bool}``.
    """
    device = get_device(device)
    path = Path(path) if path is not None else Path(str(CHECKPOINT).format(profile=get_profile(profile).name))
    encoder = encoder.to(device).eval()
    fp = backbone_fingerprint(encoder)
    trained = False
    if path.exists():
        ckpt = load_checkpoint(path)
        if ckpt["backbone_fingerprint"] != fp:
            raise ValueError(f"{path.name} was trained with conditioning backbone {ckpt['backbone_fingerprint']}, "
                             f"but this backbone is {fp}; pass the ProtoNet backbone it was trained with, or delete "
                             f"{path.name} and run python benchmarks/train_diffusion.py to retrain")
    else:
        r = {**RECIPES[get_profile(profile).name], **(recipe or {})}
        torch.manual_seed(seed)
        schedule = Schedule(r.pop("schedule"), r.pop("T"), device)
        model = UNet(cond_dim=encoder(torch.zeros(1, 1, 28, 28, device=device)).shape[1], **r.pop("model")).to(device)
        model, hist = train_diffusion(model, encoder, data.train, schedule, seed=seed, val_split=data.val,
                                      progress=progress, **r)
        ckpt = {"format": 1, "profile": profile, "config": model.config(), "schedule": schedule.kind, "T": schedule.T,
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "seed": seed,
                "recipe": {**RECIPES[get_profile(profile).name], **(recipe or {})}, "train_seconds": hist["seconds"],
                "history": hist, "backbone_fingerprint": fp, "device": str(device), "versions": versions(),
                "metrics": heldout_loss(model, encoder, data.val, schedule, seed=seed)}
        trained = True
        if save:
            atomic_torch_save(ckpt, path)
    model = UNet(**ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    return {"model": model.to(device).eval(), "schedule": Schedule(ckpt["schedule"], ckpt["T"], device),
            "checkpoint": ckpt, "trained": trained}


@dataclass
class DiffusionGenerator:
    """The diffusion model behind the augmentation interface: DDIM (or DDPM) samples conditioned on prototypes."""

    model: torch.nn.Module
    schedule: Schedule
    encoder: torch.nn.Module
    sampler: str = "ddim"
    n_steps: int = 10
    guidance: float = 2.0
    space: str = "pixel"

    def generate(self, support_x, support_y, n_generated: int, generator: torch.Generator | None = None):
        """``(generated (n_way * m, 1, 28, 28) in [0, 1], labels (n_way * m,))``, class-major."""
        n_way = int(support_y.max()) + 1
        c = class_conditions(self.encoder, support_x, support_y, n_way)  # (n_way, D)
        labels = torch.arange(n_way, device=support_x.device).repeat_interleave(n_generated)  # (n_way * m,)
        x = sample(self.model, c[labels], self.schedule, sampler=self.sampler, n_steps=self.n_steps,
                   w=self.guidance, generator=generator)
        return x.to(support_x.device), labels


@register_generator("diffusion")
def build_diffusion(data, *, backbone=None, profile: str = "quick", device=None, seed: int = 0,
                    progress: bool = False, **options) -> DiffusionGenerator:
    """The ``"diffusion"`` generator; conditioned on the committed ProtoNet backbone (``backbone`` is not used)."""
    from ..pretrained import pretrained

    encoder = pretrained("protonet", profile=profile, device=device).backbone
    out = load_or_train_diffusion(data, encoder, profile, seed, device, progress)
    return DiffusionGenerator(out["model"], out["schedule"], encoder, **options)


@torch.no_grad()
def nearest_prototype_accuracy(generator, encoder, split, n_way: int = 5, n_shot: int = 1, n_generated: int = 5,
                               n_episodes: int = 20, seed: int = 0) -> dict:
    """Are generated samples recognisably their class? Nearest-real-prototype accuracy in the encoder's space.

    For each seeded episode, the real support prototypes classify the ``n_generated`` samples per class
    generated from that support set, and (for reference) ``n_generated`` real query drawings per class.

    Returns:
        ``{"generated", "generated_ci95", "real", "real_ci95", "chance"}`` in percent, and ``"episodes"``.
    """
    from ..data.episodes import EpisodeSampler
    from ..evaluate import mean_ci95

    encoder.eval()
    device = next(encoder.parameters()).device
    sampler = EpisodeSampler(split, n_way, n_shot, n_generated, seed=seed)
    gen_acc, real_acc = [], []
    for i in range(n_episodes):
        ep = sampler.sample()
        sx, sy = ep.support_x.to(device), ep.support_y.to(device)
        protos = prototypes(encoder(sx), sy, n_way)  # (n_way, D)
        gx, gy = generator.generate(sx, sy, n_generated, torch.Generator().manual_seed(seed * 1_000_003 + i))
        gen_acc.append((torch.cdist(encoder(gx), protos).argmin(1) == gy).float().mean().item())
        real_acc.append((torch.cdist(encoder(ep.query_x.to(device)), protos).argmin(1) == ep.query_y.to(device))
                        .float().mean().item())
    (g, g_ci), (r, r_ci) = mean_ci95([100 * a for a in gen_acc]), mean_ci95([100 * a for a in real_acc])
    return {"generated": g, "generated_ci95": g_ci, "real": r, "real_ci95": r_ci, "chance": 100 / n_way,
            "episodes": n_episodes, "n_way": n_way, "n_shot": n_shot, "n_generated": n_generated}
