"""A conditional denoising diffusion model: closed-form forward process, noise-prediction loss, DDPM and DDIM sampling.

Taught in ``notebooks/08_diffusion_augmentation.ipynb``.

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

import math

import torch
from tqdm.auto import tqdm

SCHEDULES = ("linear", "cosine")


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
        self.betas = beta_schedule(kind, T).to(device)
        self.alphas = 1 - self.betas
        self.alpha_bar = torch.cumprod(self.alphas.double(), 0).float()


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


def guided_eps(model, x_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None, w: float) -> torch.Tensor:
    """Classifier-free guidance ``eps_u + w (eps_c - eps_u)``, ``(n, C, H, W)`` (one network call when w is 0 or 1)."""
    if c is None or w == 0:
        return model(x_t, t, None)
    if w == 1:
        return model(x_t, t, c)
    both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([c, c]),
                 torch.arange(2 * len(x_t), device=x_t.device) >= len(x_t))  # second half unconditional
    eps_c, eps_u = both.chunk(2)
    return eps_u + w * (eps_c - eps_u)


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
    if sampler not in ("ddpm", "ddim"):
        raise ValueError(f"sampler={sampler!r} is not known; use 'ddpm' or 'ddim'")
    n = len(c) if c is not None else n
    weight = next(model.parameters())
    device, dtype = weight.device, weight.dtype  # float64 for round-off checks
    x = (_noise((n, model.in_channels, 28, 28), generator, device) if x_T is None else x_T).to(device, dtype)
    ab = schedule.alpha_bar.cpu().tolist()
    steps = list(range(schedule.T - 1, -1, -1)) if sampler == "ddpm" else ddim_timesteps(schedule.T, n_steps)
    path = []
    for i, t in enumerate(tqdm(steps, disable=not progress, desc=sampler, leave=False)):
        eps = guided_eps(model, x, torch.full((n,), t, device=device, dtype=torch.long), c, w)
        x0 = predict_x0(x, eps, ab[t])
        if clip:
            x0 = x0.clamp(-1, 1)
            eps = (x - ab[t] ** 0.5 * x0) / (1 - ab[t]) ** 0.5
        if trajectory:
            path.append((t, x.cpu(), x0.cpu()))
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
    out = ((x.clamp(-1, 1) + 1) / 2)
    if trajectory:
        path.append((-1, x.cpu(), x.cpu()))
        return out, path
    return out
