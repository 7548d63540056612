"""Exercises of ``notebooks/09_diffusion_augmentation.ipynb``: the forward process, one DDIM step, guidance."""
from __future__ import annotations

import torch

from ..generative.diffusion import beta_schedule, ddim_step, guide, q_sample
from .core import exercise


def _alpha_bar(kind: str, T: int) -> torch.Tensor:
    return torch.cumprod(1 - beta_schedule(kind, T).double(), 0).float()  # on the CPU, as beta_schedule gives it


def _q_sample_cases():
    g = torch.Generator().manual_seed(808)
    cases = []
    for n, kind, T in ((1, "linear", 100), (4, "cosine", 200), (6, "linear", 500)):
        x0 = 2 * torch.rand(n, 1, 28, 28, generator=g) - 1
        t = torch.randint(0, T, (n,), generator=g)
        t[0] = T - 1  # the last step: almost pure noise
        cases.append((x0, t, torch.randn(n, 1, 28, 28, generator=g), _alpha_bar(kind, T)))
    return cases


@exercise("diffusion_q_sample", "x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise, one t per image",
          _q_sample_cases)
def q_sample_reference(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                       alpha_bar: torch.Tensor) -> torch.Tensor:
    """``(n, 1, 28, 28)`` noisy images at steps ``t`` ``(n,)``."""
    return q_sample(x0, t, noise, alpha_bar)


def _ddim_cases():
    g = torch.Generator().manual_seed(2010)
    ab = _alpha_bar("cosine", 200)
    cases = []
    for n, t, t_prev in ((1, 199, 150), (3, 100, 90), (5, 10, 0)):
        cases.append((torch.randn(n, 1, 28, 28, generator=g), torch.randn(n, 1, 28, 28, generator=g),
                      float(ab[t]), float(ab[t_prev])))
    cases.append((torch.randn(2, 1, 28, 28, generator=g), torch.randn(2, 1, 28, 28, generator=g), float(ab[5]), 1.0))
    return cases


@exercise("ddim_step", "one deterministic DDIM step: predict x0, then move to alpha_bar_prev along the same noise",
          _ddim_cases, atol=1e-4)
def ddim_step_reference(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float,
                        alpha_bar_prev: float) -> torch.Tensor:
    """``sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev) eps``, ``x0_hat = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t)``."""
    return ddim_step(x_t, eps, alpha_bar_t, alpha_bar_prev)


def _guidance_cases():
    g = torch.Generator().manual_seed(809)
    return [(torch.randn(n, 1, 28, 28, generator=g), torch.randn(n, 1, 28, 28, generator=g), w)
            for n, w in ((1, 0.0), (2, 1.0), (3, 2.0), (2, 3.5), (1, 0.5))]


@exercise("cfg_guidance", "classifier-free guidance: eps_u + w (eps_c - eps_u), w = 0 unconditional, w = 1 conditional",
          _guidance_cases)
def guidance_reference(eps_c: torch.Tensor, eps_u: torch.Tensor, w: float) -> torch.Tensor:
    """The package's :func:`fslcourse.generative.diffusion.guide`."""
    return guide(eps_c, eps_u, w)
