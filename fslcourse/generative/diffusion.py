"""A conditional denoising diffusion model: closed-form forward process, noise-prediction loss, DDPM and DDIM sampling.

Taught in ``notebooks/09_diffusion_augmentation.ipynb``.

Ho, Jain & Abbeel (2020), "Denoising Diffusion Probabilistic Models", arXiv:2006.11239:
the forward process adds Gaussian noise with variances :math:`\\beta_1..\\beta_T`, and in
closed form :math:`q(x_t\\mid x_0) = \\mathcal N(\\sqrt{\\bar\\alpha_t}\\,x_0, (1-\\bar\\alpha_t) I)`
with :math:`\\bar\\alpha_t = \\prod_{s\\le t}(1-\\beta_s)`. A network :math:`\\varepsilon_\\theta(x_t, t, c)`
is trained with :math:`\\lVert \\varepsilon - \\varepsilon_\\theta(x_t, t, c)\\rVert^2`, where
:math:`x_t = \\sqrt{\\bar\\alpha_t} x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon`.
Sampling: ancestral DDPM (T steps) or deterministic DDIM (Song, Meng & Ermon 2020,
arXiv:2010.02502) on a sub-sequence of steps. Schedules: linear (Ho et al.) or cosine
(Nichol & Dhariwal 2021, arXiv:2102.09672). Classifier-free guidance (Ho & Salimans 2022,
arXiv:2207.12598): the condition is dropped with probability ``p_uncond`` while training, and
:math:`\\tilde\\varepsilon = \\varepsilon_\\theta(x_t, t)
+ w\\,(\\varepsilon_\\theta(x_t, t, c) - \\varepsilon_\\theta(x_t, t))`
at sampling time (``w = 0``: unconditional, ``w = 1``: conditional).

Images are scaled from ``[0, 1]`` to ``[-1, 1]``; samplers return ``[0, 1]``. The time index
``t`` runs over ``0 .. T-1`` (the paper's ``1 .. T``). All noise is drawn from a CPU ``torch.Generator``.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from ..methods.base import n_way_of, prototypes
from ..recipe import Recipe
from .augment import check_request, seeded

SCHEDULES = ("linear", "cosine")

# The ``diffusion`` trainer: each step draws ``n_way`` meta-train characters; each gets a prototype from
# K ∈ {1..n_shot} drawings (the frozen ProtoNet backbone's mean feature) and ``n_query`` other drawings to
# denoise. Adam with a 100-step warm-up and a cosine decay; the saved model is the EMA of the weights.
RECIPES = {
    "quick": Recipe(trainer="diffusion", steps=10_000, lr=2e-3, schedule="warmup-cosine", schedule_kwargs={"warmup": 100},
                    n_way=16, n_shot=5, n_query=2, val_every=250, val_episodes=1, model={"channels": 16},
                    options={"p_uncond": 0.15, "ema": 0.995, "noise_schedule": "cosine", "T": 200, "keep": "last"}),
    "full": Recipe(trainer="diffusion", steps=20_000, lr=1e-3, schedule="warmup-cosine", schedule_kwargs={"warmup": 100},
                   n_way=32, n_shot=5, n_query=4, val_every=1000, val_episodes=1, model={"channels": 64},
                   options={"p_uncond": 0.15, "ema": 0.999, "noise_schedule": "cosine", "T": 500, "keep": "last"}),
}
RECIPES["paper"] = RECIPES["full"].replace(note="the course's full recipe: Ho et al. 2020 (arXiv:2006.11239) train "
                                           "unconditional models with T = 1000 and a linear schedule on other "
                                           "datasets; here a model conditioned on a class's prototype, with classifier-free guidance, "
                                           "T = 500 and the cosine schedule (Nichol & Dhariwal 2021)")


def beta_schedule(kind: str, T: int) -> torch.Tensor:
    """``(T,)`` noise variances: ``"linear"`` from ``1e-4`` to ``0.02`` rescaled by ``1000 / T``, or ``"cosine"``.

    Both are clipped at 0.999 (the linear one exceeds 1 for T < 50).
    """
    if kind == "linear":
        scale = 1000.0 / T
        return torch.linspace(scale * 1e-4, scale * 0.02, T, dtype=torch.float64).clamp(max=0.999).float()
    if kind == "cosine":
        s = 0.008
        f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * math.pi / 2) ** 2  # (T+1,)
        return (1 - f[1:] / f[:-1]).clamp(max=0.999).float()
    raise ValueError(f"schedule={kind!r} is not known; use one of {', '.join(SCHEDULES)}")


class Schedule:
    """``betas``, ``alphas = 1 - betas`` and ``alpha_bar`` (cumulative product), each ``(T,)``, on ``device``."""

    def __init__(self, kind: str = "cosine", T: int = 200, device=None):
        self.kind, self.T = kind, T
        betas = beta_schedule(kind, T)  # (T,) on the CPU: the product in float64 there (MPS has none), then moved
        self.betas, self.alphas = betas.to(device), (1 - betas).to(device)
        self.alpha_bar = torch.cumprod((1 - betas).double(), 0).float().to(device)  # CPU


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise``.

    Args:
        x0, noise: ``(n, C, H, W)``; t: ``(n,)`` steps in ``0 .. T-1``; alpha_bar: ``(T,)``.

    Returns:
        ``(n, C, H, W)``.
    """
    ab = alpha_bar[t][:, None, None, None]  # (n, 1, 1, 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def diffusion_loss(model, x0: torch.Tensor, c: torch.Tensor | None, schedule: Schedule, p_uncond: float = 0.1,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean ``||eps - eps_theta(x_t, t, c)||^2`` per pixel, t uniform, condition dropped with ``p_uncond``.

    Args:
        x0: ``(n, C, H, W)`` clean images in ``[-1, 1]``.
        c: ``(n, cond_dim)`` conditions (or None: unconditional).
        generator: CPU generator for t, the noise and the drop mask.
    """
    n = len(x0)
    t = torch.randint(0, schedule.T, (n,), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0)
    drop = (torch.rand(n, generator=generator) < p_uncond).to(x0.device)
    return (noise - model(q_sample(x0, t, noise, schedule.alpha_bar), t, c, drop)).pow(2).mean()


def guide(eps_c: torch.Tensor, eps_u: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance's combination ``eps_u + w (eps_c - eps_u)`` (``w = 0``: unconditional, 1: conditional).

    Args:
        eps_c, eps_u: ``(n, C, H, W)`` noise predicted with and without the condition.
        w: guidance scale (Ho & Salimans's ``w`` plus one: their ``(1 + w) eps_c - w eps_u``).
    """
    return eps_u + w * (eps_c - eps_u)


def guided_eps(model, x_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None, w: float) -> torch.Tensor:
    """Classifier-free guidance ``eps_u + w (eps_c - eps_u)``, ``(n, C, H, W)`` (one network call when w is 0 or 1)."""
    if c is None or w == 0:
        return model(x_t, t, None)
    if w == 1:
        return model(x_t, t, c)
    both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([c, c]),
                 torch.arange(2 * len(x_t), device=x_t.device) >= len(x_t))  # second half unconditional
    eps_c, eps_u = both.chunk(2)
    return guide(eps_c, eps_u, w)


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t) -> torch.Tensor:
    """Invert the closed form: ``x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)``."""
    return (x_t - (1 - alpha_bar_t) ** 0.5 * eps) / alpha_bar_t ** 0.5


def ddim_step(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, alpha_bar_prev: float,
              x0: torch.Tensor | None = None) -> torch.Tensor:
    """One deterministic DDIM step (eta = 0): ``sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev) eps``.

    ``x0`` (optional) is ``x0_hat`` already computed (e.g. clipped, with ``eps`` re-derived from it, as
    :func:`sample` does); by default ``x0_hat = predict_x0(x_t, eps, alpha_bar_t)``.
    """
    x0 = predict_x0(x_t, eps, alpha_bar_t) if x0 is None else x0
    return alpha_bar_prev ** 0.5 * x0 + (1 - alpha_bar_prev) ** 0.5 * eps


def ddim_timesteps(T: int, n_steps: int) -> list[int]:
    """``n_steps`` evenly spaced steps from ``T-1`` down to 0."""
    if not 1 <= n_steps <= T:
        raise ValueError(f"n_steps={n_steps} must be between 1 and T={T}")
    return torch.linspace(T - 1, 0, n_steps).round().long().tolist()


def _noise(shape, generator, like_device):
    return torch.randn(shape, generator=generator).to(like_device)


@torch.no_grad()
def sample(model, c: torch.Tensor | None, schedule: Schedule, n: int | None = None, sampler: str = "ddim",
           n_steps: int = 20, w: float = 1.0, generator: torch.Generator | None = None, clip: bool = True,
           x_T: torch.Tensor | None = None, trajectory: bool = False, progress: bool = False):
    """Draw samples with ancestral ``"ddpm"`` (all T steps) or deterministic ``"ddim"`` (``n_steps`` steps).

    Args:
        model: ε_θ, called as ``model(x_t, t, c)``.
        c: ``(n, cond_dim)`` conditions, one per sample, or None (then ``n`` samples, unconditional).
        schedule: the :class:`Schedule` the model was trained with.
        w: guidance scale.
        generator: CPU generator for ``x_T`` (DDIM) and every step's noise (DDPM).
        clip: clamp the predicted ``x0_hat`` to ``[-1, 1]`` at each step (and re-derive the noise from it).
        x_T: start from this ``(n, 1, 28, 28)`` noise instead of drawing it.
        trajectory: also return ``[(t, x_t, x0_hat), ...]`` (CPU tensors in ``[-1, 1]``) along the way.

    Returns:
        ``(n, 1, 28, 28)`` samples in ``[0, 1]`` (and the trajectory list when asked).
    """
    steps = denoise_steps(model, c, schedule, n, sampler, n_steps, w, generator, clip, x_T, keep=trajectory)
    path = list(tqdm(steps, disable=not progress, desc=sampler, leave=False,
                     total=1 + (schedule.T if sampler == "ddpm" else len(ddim_timesteps(schedule.T, n_steps)))))
    x = path.pop()[1]  # the final x_0, still on the model's device
    out = ((x.clamp(-1, 1) + 1) / 2)
    if trajectory:
        path.append((-1, x.cpu(), x.cpu()))
        return out, path
    return out


@torch.no_grad()
def denoise_steps(model, c: torch.Tensor | None, schedule: Schedule, n: int | None = None, sampler: str = "ddim",
                  n_steps: int = 20, w: float = 1.0, generator: torch.Generator | None = None, clip: bool = True,
                  x_T: torch.Tensor | None = None, keep: bool = True):
    """The reverse process one step at a time, as :func:`sample` runs it (same arguments).

    Yields ``(t, x_t, x0_hat)`` for every step, ``x_t`` the input of the step at time ``t`` and ``x0_hat``
    the clean drawing predicted there (CPU tensors in ``[-1, 1]``; ``None`` for both unless ``keep``), then
    ``(-1, x_0, None)`` with the final samples on the model's device. Lazy: a viewer that shows step ``i``
    computes steps ``0 .. i`` only (:class:`fslcourse.widgets.diffusion_explorer.DiffusionExplorer`).
    """
    if sampler not in ("ddpm", "ddim"):
        raise ValueError(f"sampler={sampler!r} is not known; use 'ddpm' or 'ddim'")
    if c is None and n is None:
        raise ValueError("c=None and n=None: pass conditions c (n, D), or n for n unconditional samples")
    n = len(c) if c is not None else n
    weight = next(model.parameters())
    device, dtype = weight.device, weight.dtype  # float64 for round-off checks
    x = (_noise((n, model.in_channels, 28, 28), generator, device) if x_T is None else x_T).to(device, dtype)
    ab = schedule.alpha_bar.cpu().tolist()
    steps = list(range(schedule.T - 1, -1, -1)) if sampler == "ddpm" else ddim_timesteps(schedule.T, n_steps)
    for i, t in enumerate(steps):
        eps = guided_eps(model, x, torch.full((n,), t, device=device, dtype=torch.long), c, w)
        x0 = predict_x0(x, eps, ab[t])
        if clip:
            x0 = x0.clamp(-1, 1)
            eps = (x - ab[t] ** 0.5 * x0) / (1 - ab[t]) ** 0.5
        yield (t, x.cpu(), x0.cpu()) if keep else (t, None, None)
        if sampler == "ddim":
            prev = ab[steps[i + 1]] if i + 1 < len(steps) else 1.0
            x = ddim_step(x, eps, ab[t], prev, x0=x0)
        else:  # posterior q(x_{t-1} | x_t, x0_hat): mean coef_x0 * x0 + coef_xt * x_t, variance beta_tilde
            prev = ab[t - 1] if t > 0 else 1.0
            beta = 1 - ab[t] / prev
            mean = (prev ** 0.5 * beta * x0 + (1 - beta) ** 0.5 * (1 - prev) * x) / (1 - ab[t])
            if t > 0:  # the noise is drawn in float32 (the same draws in any dtype), none on the last step
                mean = mean + ((1 - prev) / (1 - ab[t]) * beta) ** 0.5 * _noise(x.shape, generator, device).to(x.dtype)
            x = mean
    yield -1, x, None


def class_conditions(backbone, x: torch.Tensor, y: torch.Tensor, n_way: int) -> torch.Tensor:
    """Prototypes of the support set in the backbone's feature space: ``(n_way * n_shot, 1, 28, 28) -> (n_way, D)``."""
    with torch.no_grad():
        return prototypes(backbone(x), y, n_way)


@torch.no_grad()
def heldout_loss(model, backbone, split, schedule: Schedule, n_classes: int = 16, n_shot: int = 5,
                 n_target: int = 5, seed: int = 0) -> dict:
    """Conditional denoising loss on fixed seeded drawings of ``split``, and the loss of predicting zero noise.

    Args:
        model: the noise predictor :math:`\\varepsilon_\\theta(x_t, t, c)`, called as ``model(x_t, t, c)``.
        backbone: the frozen conditioning backbone ``(n, 1, 28, 28) -> (n, D)``.
        split: the drawings (an :class:`~fslcourse.data.splits.ImageSplit`).
        schedule: the noise schedule.
        n_classes, n_shot, n_target: ``n_classes`` seeded characters, each with a prototype of ``n_shot`` drawings
            and ``n_target`` other drawings to denoise: ``(n_classes * n_target, 1, 28, 28)`` targets.
        seed: the characters, drawings, steps ``t`` and noise.

    Returns:
        ``{"loss": mean ||eps - eps_theta||^2, "zero_noise": mean ||eps||^2}`` per pixel (the same t and noise).
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.randperm(split.n_classes, generator=g)[:n_classes]
    ex = torch.stack([torch.randperm(split.n_examples, generator=g) for _ in ids])  # (n_classes, n_examples)
    device = next(model.parameters()).device
    x = split.get(ids, ex[:, : n_shot + n_target]).to(device)  # (n_classes, n_shot + n_target, 1, 28, 28)
    c = prototypes(backbone(x[:, :n_shot].flatten(0, 1)), torch.arange(n_classes, device=device).repeat_interleave(
        n_shot), n_classes).repeat_interleave(n_target, 0)  # (n_classes * n_target, D)
    x0 = 2 * x[:, n_shot:].flatten(0, 1) - 1  # (n_classes * n_target, 1, 28, 28)
    t = torch.randint(0, schedule.T, (len(x0),), generator=g).to(device)
    noise = torch.randn(x0.shape, generator=g).to(device)
    eps = model.eval()(q_sample(x0, t, noise, schedule.alpha_bar), t, c)
    return {"loss": (noise - eps).pow(2).mean().item(), "zero_noise": noise.pow(2).mean().item()}


class DiffusionTrainer(nn.Module):
    """ε_θ and the exponential moving average (EMA) of its weights, trained on prototype conditions.

    Args:
        model: the noise predictor, called as ``model(x_t, t, c)``.
        backbone: the frozen conditioning backbone (not a submodule: it is neither trained nor saved).
        schedule: the noise :class:`Schedule`.
        p_uncond: probability of dropping the condition (classifier-free guidance).
        ema: EMA decay; ``self.ema`` is the model that is sampled from and saved.
    """

    def __init__(self, model: nn.Module, backbone: nn.Module, schedule: Schedule, p_uncond: float = 0.15,
                 ema: float = 0.995):
        super().__init__()
        self.model, self.schedule, self.p_uncond, self.decay = model, schedule, p_uncond, ema
        self.ema = copy.deepcopy(model).eval().requires_grad_(False)
        object.__setattr__(self, "backbone", backbone.eval())

    def train(self, mode: bool = True):
        super().train(mode)
        self.ema.eval()
        return self

    def train_step(self, batch: dict, optimizer) -> dict:
        """One denoising step. ``batch``: ``x`` ``(n_way, k + n_target, 1, 28, 28)`` in [0, 1], ``k`` and ``generator``."""
        x, k = batch["x"], batch["k"]
        n_classes, n_target = x.shape[0], x.shape[1] - k
        c = class_conditions(self.backbone, x[:, :k].flatten(0, 1), torch.arange(n_classes, device=x.device)
                             .repeat_interleave(k), n_classes).repeat_interleave(n_target, 0)  # (n_classes*n_target, D)
        loss = diffusion_loss(self.model, 2 * x[:, k:].flatten(0, 1) - 1, c, self.schedule, self.p_uncond,
                              batch["generator"])  # (n_classes*n_target, 1, 28, 28) targets in [-1, 1]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for a, p in zip(self.ema.parameters(), self.model.parameters()):
                a.lerp_(p, 1 - self.decay)
        return {"loss": loss.item()}


@dataclass
class DiffusionGenerator:
    """The diffusion model behind the augmentation interface: DDIM (or DDPM) samples conditioned on prototypes.

    Args:
        model: the noise predictor (:class:`~fslcourse.models.unet.UNet`); schedule: its noise schedule.
        backbone: the frozen conditioning backbone ``(n, 1, 28, 28) -> (n, D)`` whose class means are ``c``.
        sampler: ``"ddim"`` or ``"ddpm"``; n_steps: DDIM's steps (DDPM takes all ``T``).
        guidance: the classifier-free guidance weight ``w``.
        space: ``"pixel"`` (what it generates); source: the checkpoint it came from, ``{"file", "sha256"}``.
    """

    model: torch.nn.Module
    schedule: Schedule
    backbone: torch.nn.Module
    sampler: str = "ddim"
    n_steps: int = 10
    guidance: float = 2.0
    space: str = "pixel"
    source: dict | None = None  # {"file", "sha256"} of the checkpoint the model came from

    def generate(self, support_x, support_y, n_per_class: int, seed: int):
        """``(generated (n_way * m, 1, 28, 28) in [0, 1], labels (n_way * m,))``, class-major; noise seeded by ``seed``."""
        check_request(support_x, support_y, n_per_class)
        n_way = n_way_of(support_y)
        c = class_conditions(self.backbone, support_x, support_y, n_way)  # (n_way, D)
        labels = torch.arange(n_way, device=support_x.device).repeat_interleave(n_per_class)  # (n_way * m,)
        x = sample(self.model, c[labels], self.schedule, sampler=self.sampler, n_steps=self.n_steps,
                   w=self.guidance, generator=seeded(seed))
        return x.to(support_x.device), labels
