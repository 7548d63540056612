"""Reptile: move the initialisation towards the weights that SGD finds on each task.

Taught in ``notebooks/05_maml.ipynb``.

Nichol, Achiam and Schulman 2018, "On First-Order Meta-Learning Algorithms",
arXiv:1803.02999. For each task of a meta-batch, run ``k`` steps of SGD from
``θ`` on the task's examples to get ``φ̃``; then
``θ ← θ + ε (mean over tasks of φ̃ − θ)``. No second derivatives and no
support/query split inside the update. The update is written as a gradient,
``θ.grad = θ − mean φ̃``, so ``torch.optim.SGD(lr=ε)`` performs exactly the
formula (and a scheduler can anneal ``ε``). The SGD steps, and test-time adaptation,
are MAML's inner loop (:func:`~fslcourse.methods.maml.inner_loop`) on MAML's network.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import vmap

from ..models.maml_conv import MAMLConv4
from ..recipe import Recipe
from .base import FewShotClassifier, n_way_of, register
from .maml import adapted_logits, inner_loop, inner_loop_tasks

# quick: 5 inner steps of 0.2 on 2 images per class of 2 twenty-way tasks per step, with a zero head,
# for 1500 steps (about the CPU time of first-order MAML's quick recipe); the outer step is SGD with
# lr = ε annealed to 0. full/paper: Nichol et al. 2018, Table 3 (Omniglot): 5 inner steps, meta-batch 5, with
# MAML's batched back-end (the fastest; the default, vmap, made the committed quick checkpoint).
_PAPER = Recipe(n_way=5, n_shot=1, n_query=9, meta_batch=5, optimizer="sgd", lr=1.0, schedule="cosine",
                steps=100_000, val_every=1000, val_episodes=500,
                model=dict(n_way=5, hidden=64, inner_lr=0.4, inner_steps=5, test_inner_steps=50, backend="batched"),
                note="Nichol et al. 2018 (arXiv:1803.02999), Omniglot 5-way")


@register("reptile")
class Reptile(FewShotClassifier):
    """Reptile on MAML's Conv-4 (:class:`~fslcourse.models.maml_conv.MAMLConv4`).

    Args: as :class:`~fslcourse.methods.maml.MAML`'s, less ``first_order`` and the ``"loop"`` back-end;
    ``inner_steps`` is ``k`` and ``inner_lr`` the SGD step size. With ``zero_head=True`` every task starts from a zero head
    (Kao et al. 2022, arXiv:2106.15367) and only the body is meta-learned.
    """

    needs_grad_at_test = True
    test_batch_norm = "batch"  # MAML's Conv-4: each batch's statistics (transductive)
    retired_config = ("first_order",)  # MAML's, in checkpoints made while Reptile subclassed it
    RECIPES = {"quick": Recipe(n_way=20, n_shot=1, n_query=1, meta_batch=2, optimizer="sgd", lr=1.0,
                               schedule="cosine", steps=1500, val_every=250, val_episodes=100,
                               model=dict(n_way=5, hidden=32, inner_lr=0.2, inner_steps=5, test_inner_steps=10,
                                          zero_head=True)),
               "full": _PAPER, "paper": _PAPER.replace(options={"split": "vinyals"})}  # paper: the papers' split

    def __init__(self, n_way: int = 5, hidden: int = 64, inner_lr: float = 0.4, inner_steps: int = 1,
                 test_inner_steps: int = 3, stride: int = 2, zero_head: bool = False, backend: str = "vmap"):
        super().__init__()
        if backend not in ("vmap", "batched"):
            raise ValueError(f"backend={backend!r} is not known; use 'vmap' or 'batched'")
        if inner_steps < 0 or test_inner_steps < 0:
            raise ValueError(f"inner_steps={inner_steps} and test_inner_steps={test_inner_steps} must be >= 0")
        self.net = MAMLConv4(n_way, hidden=hidden, stride=stride)
        self.n_way, self.hidden, self.stride, self.zero_head, self.backend = n_way, hidden, stride, zero_head, backend
        self.inner_lr, self.inner_steps, self.test_inner_steps = inner_lr, inner_steps, test_inner_steps

    def config(self) -> dict:
        return dict(n_way=self.n_way, hidden=self.hidden, inner_lr=self.inner_lr, inner_steps=self.inner_steps,
                    test_inner_steps=self.test_inner_steps, stride=self.stride, zero_head=self.zero_head,
                    backend=self.backend)

    def predict(self, support_x, support_y, query_x):
        """``test_inner_steps`` SGD steps on the support set, then the query logits (:func:`~.maml.adapted_logits`)."""
        return adapted_logits(self.net, support_x, support_y, query_x, self.inner_lr, self.test_inner_steps,
                              self.zero_head)

    def task_weights(self, batch) -> dict[str, torch.Tensor]:
        """``φ̃`` of every task: ``inner_steps`` SGD steps on its support and query examples together.

        Args:
            batch: an Episode batch, ``support_x`` ``(B, n_way * n_shot, C, H, W)``.

        Returns:
            ``{name: (B, *param.shape)}`` adapted weights, detached.
        """
        x = torch.cat([batch.support_x, batch.query_x], dim=1)  # (B, n_way*(n_shot+n_query), C, H, W)
        y = torch.cat([batch.support_y, batch.query_y], dim=1)  # (B, n_way*(n_shot+n_query))
        n_way = n_way_of(batch.support_y) if self.zero_head else None
        if self.backend == "batched":  # every task in one autograd graph (MAML's fast back-end), first order
            phi = inner_loop_tasks(self.net, dict(self.net.named_parameters()), x, y, self.inner_lr,
                                   self.inner_steps, n_way, first_order=True)
            return {k: v.detach() for k, v in phi.items()}
        theta = {k: v.detach() for k, v in self.net.named_parameters()}
        return vmap(lambda xi, yi: inner_loop(self.net, theta, xi, yi, self.inner_lr, self.inner_steps, n_way))(x, y)

    def train_step(self, batch, optimizer):
        """``θ ← θ + ε (mean φ̃ − θ)`` through ``optimizer`` (SGD with ``lr = ε`` is the formula).

        Returns ``{"loss", "accuracy"}`` on the query examples after adaptation (Reptile trains on them
        too, so this is a training-set curve). A zero head is not meta-learned: it gets no gradient.
        """
        phi = self.task_weights(batch)
        with torch.no_grad():
            logits = (self.net.forward_tasks(batch.query_x, phi) if self.backend == "batched"
                      else vmap(self.net, in_dims=(0, 0))(batch.query_x, phi))  # (B, n_query_total, n_way)
            loss = F.cross_entropy(logits.flatten(0, 1), batch.query_y.flatten())  # flatten: (B*n_query_total, ...)
            acc = (logits.argmax(dim=-1) == batch.query_y).float().mean()
        optimizer.zero_grad(set_to_none=True)
        for name, p in self.net.named_parameters():
            p.grad = None if self.zero_head and name.startswith("head.") else p.detach() - phi[name].mean(dim=0)
        optimizer.step()
        return {"loss": loss.item(), "accuracy": acc.item()}
