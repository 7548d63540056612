"""Exercises of ``notebooks/04_finetune_baseline.ipynb``."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..methods.finetune import FineTune, entropy_regulariser
from .core import exercise, matching_slip


def _entropy_cases():
    g = torch.Generator().manual_seed(2020)
    return [(torch.zeros(1, 2),), (torch.randn(10, 5, generator=g) * 3,), (torch.randn(4, 20, generator=g) * 30,)]


def _entropy_has_gradient(fn) -> str | None:
    """The regulariser is added to a loss: a value without the entropy's gradient in the logits does nothing."""
    logits = (3 * torch.randn(6, 5, generator=torch.Generator().manual_seed(7))).requires_grad_()
    out = fn(logits)
    if not torch.is_tensor(out) or not out.requires_grad:
        return ("your value carries no gradient, so as a loss term it would change nothing: keep it a tensor "
                "computed from the logits (no torch.no_grad(), no float(...))")
    (got,) = torch.autograd.grad(out, logits)
    (want,) = torch.autograd.grad(entropy_regulariser(logits), logits)
    if not torch.allclose(got, want, atol=1e-5):
        return "its gradient in the logits is not the entropy's (a detached softmax or log-probability?)"
    return None


@exercise("entropy_regulariser", "mean entropy of the softmax predictions (nats)", _entropy_cases,
          concept=_entropy_has_gradient)
def entropy_reference(logits: torch.Tensor) -> torch.Tensor:
    """Scalar tensor: mean over rows of ``-sum_k p_k log p_k`` with ``p = softmax(logits)``, logits ``(n, n_way)``."""
    return entropy_regulariser(logits)


def _head_cases():
    g = torch.Generator().manual_seed(2020)
    cases = []
    for n_way, n_shot, n_query, dim, steps, lr in ((2, 1, 3, 4, 1, 0.1), (5, 1, 4, 16, 10, 0.01), (3, 5, 2, 8, 25, 0.05)):
        support_y = torch.arange(n_way).repeat_interleave(n_shot)
        support_y = support_y[torch.randperm(len(support_y), generator=g)]  # not sorted by class: no reshape trick
        cases.append((torch.randn(len(support_y), dim, generator=g), support_y,
                      torch.randn(n_way * n_query, dim, generator=g), n_way, steps, lr))
    return cases


def _head_loop(z_support, support_y, z_query, n_way, steps, lr, *, start_at_means=True, zero_grad=True,
               reduction="mean"):
    """The per-episode loop written out, with one of the usual slips switched on (for :func:`_diagnose_head`)."""
    means = torch.stack([z_support[support_y == k].mean(0) for k in range(n_way)])  # (n_way, D)
    weight = (means if start_at_means else torch.zeros_like(means)).clone().requires_grad_()
    bias = torch.zeros(n_way, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=lr)
    for _ in range(steps):
        if zero_grad:
            optimizer.zero_grad()
        F.cross_entropy(z_support @ weight.T + bias, support_y, reduction=reduction).backward()
        optimizer.step()
    return (z_query @ weight.T + bias).detach()


def _diagnose_head(fn) -> str | None:
    """Name the slips notebook 04 warns about: a random start, gradients never zeroed, a zero start, a summed loss."""
    case = _head_cases()[1]  # ten steps: every slip shows
    got = fn(*case)
    if not torch.equal(got, fn(*case)):  # the same episode twice, other logits: the head starts from noise
        return ("your function gives other logits each time it runs on the same episode: the head starts from random "
                "values; start it at the class means, W = M, b = 0")
    slips = (({"zero_grad": False}, "the gradients add up from step to step: call optimizer.zero_grad() before each "
                                    "backward()"),
             ({"start_at_means": False}, "the head starts from zeros: start it at the class means, W = M (row k the "
                                         "mean support feature of class k), b = 0"),
             ({"reduction": "sum"}, "the loss is summed over the support set: take its mean (F.cross_entropy's "
                                    "default), as the package does"))
    return matching_slip(got, lambda **slip: _head_loop(*case, **slip), slips)


def _head_detached(fn) -> str | None:
    """The exercise asks for the query logits detached: a graph kept per episode holds the head's memory."""
    if fn(*_head_cases()[0]).requires_grad:
        return ("your logits still carry the head's autograd graph: return them detached (.detach()), as the "
                "exercise asks, so that no graph is kept from one episode to the next")
    return None


@exercise("finetune_head", "the per-episode loop: a linear head from W = M, b = 0, `steps` Adam steps of the support "
          "cross-entropy, then the query logits", _head_cases, diagnose=_diagnose_head, concept=_head_detached)
def finetune_head_reference(z_support, support_y, z_query, n_way: int, steps: int, lr: float) -> torch.Tensor:
    """:meth:`fslcourse.methods.finetune.FineTune.classify_embeddings` with a linear head at the class means."""
    head = FineTune(n_classes=n_way, backbone_kwargs={"hidden": 1}, steps=steps, lr=lr, init="mean", cosine=False)
    return head.classify_embeddings(z_support, support_y, z_query)
