"""Reptile: move the initialisation towards the weights that SGD finds on each task.

Taught in ``notebooks/05_maml.ipynb``.

Nichol, Achiam and Schulman 2018, "On First-Order Meta-Learning Algorithms",
arXiv:1803.02999. For each task of a meta-batch, run ``S`` steps of SGD from
``θ`` on the task's examples to get ``φ̃``; then
``θ ← θ + ε (mean over tasks of φ̃ − θ)``. No second derivatives and no
support/query split inside the update. The update is written as a gradient,
``θ.grad = θ − mean φ̃``, so ``torch.optim.SGD(lr=ε)`` performs exactly the
formula (and a scheduler can anneal ``ε``).

The inner optimiser is plain SGD (MAML's inner loop, :func:`~fslcourse.methods.maml.inner_loop`,
on MAML's network, all tasks at once) or, as in the paper's experiments, Adam with ``β1 = 0`` on
random mini-batches of the task's examples (back-end ``"loop"``). Its second-moment estimates are
not part of ``θ``: the paper's code keeps them from task to task and from one meta-step to the next,
and so does this module (buffers, saved with the checkpoint), so tasks run one after another.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import vmap

from ..models.maml_conv import MAMLConv4
from ..recipe import Recipe
from .base import FewShotClassifier, n_way_of, register
from .maml import adapted_logits, check_head, inner_loop, inner_loop_tasks, zero_head

# quick: 5 inner steps of 0.2 on 2 images per class of 2 twenty-way tasks per step, with a zero head,
# for 1500 steps (about the CPU time of first-order MAML's quick recipe); the outer step is SGD with
# lr = ε annealed to 0. full/paper: the paper's Omniglot 1-shot 5-way run (Nichol et al. 2018, Appendix A, and
# the command in openai/supervised-reptile's README): 10 examples per class (train-shots), 5 inner steps of Adam
# (lr 1e-3, β1 = 0) on mini-batches of 10, meta-batch 5, ε from 1 down to 0 linearly over 100,000 meta-steps;
# 50 Adam steps on the support set at test time. Departures: the checkpoint is the best on meta-validation (the
# paper's code keeps the last weights), and test-time steps use the whole support set (the paper's batches of 5
# are the whole support set at 5-way 1-shot, a part of it at 5-shot or 20-way). Validation: 200 episodes every
# 5000 meta-steps (50 Adam steps per episode make it dear: reptile-paper.pt's log has 53 to 74 CPU-s a validation,
# 0.26 to 0.37 CPU-s a 5-way 1-shot episode).
_PAPER = Recipe(n_way=5, n_shot=1, n_query=9, meta_batch=5, optimizer="sgd", lr=1.0, schedule="linear",
                steps=100_000, val_every=5000, val_episodes=200,
                model=dict(n_way=5, hidden=64, inner_lr=1e-3, inner_steps=5, test_inner_steps=50, backend="loop",
                           inner_optimizer="adam", inner_batch=10),
                note="Nichol et al. 2018 (arXiv:1803.02999), Appendix A and its code's Omniglot 1-shot 5-way command")
# The paper's 20-way 1-shot run (its code's README): 10 inner Adam steps (lr 5e-4) on mini-batches of 20,
# 200,000 meta-steps; the same departures.
_PAPER_20WAY = _PAPER.replace(n_way=20, steps=200_000, val_n_way=20, options={"split": "vinyals"},
                              model=dict(n_way=20, inner_lr=5e-4, inner_steps=10, inner_batch=20),
                              note="Nichol et al. 2018 (arXiv:1803.02999), Appendix A and its code's Omniglot "
                                   "1-shot 20-way command; tested transductively, beside the paper's transductive "
                                   "figure (the README's command is not; training is the same)")
ADAM_BETA2, ADAM_EPS = 0.999, 1e-8  # TensorFlow's defaults, which the paper's code uses


@register("reptile")
class Reptile(FewShotClassifier):
    """Reptile on MAML's Conv-4 (:class:`~fslcourse.models.maml_conv.MAMLConv4`).

    Args: as :class:`~fslcourse.methods.maml.MAML`'s, less ``first_order``; ``inner_steps`` is ``S`` and
    ``inner_lr`` the inner step size. With ``zero_head=True`` every task starts from a zero head
    (Kao et al. 2022, arXiv:2106.15367) and only the body is meta-learned.
        backend: ``"vmap"`` or ``"batched"`` (SGD, every task at once) or ``"loop"`` (task by task).
        inner_optimizer: ``"sgd"`` or ``"adam"`` (``β1 = 0``, moments kept across tasks; needs ``"loop"``).
        inner_batch: examples per inner step, drawn without replacement from shuffled passes over the
            task's examples (0: all of them; needs ``"loop"``). Test-time steps always use the whole support set.
        transductive: classify the queries as one batch (BatchNorm from their statistics); ``False``: each
            query in a batch with the support set, as the paper's non-transductive results.
    """

    needs_grad_at_test = True
    retired_config = ("first_order",)  # MAML's, in checkpoints made while Reptile subclassed it
    RECIPES = {"quick": Recipe(n_way=20, n_shot=1, n_query=1, meta_batch=2, optimizer="sgd", lr=1.0,
                               schedule="cosine", steps=1500, val_every=250, val_episodes=100,
                               model=dict(n_way=5, hidden=32, inner_lr=0.2, inner_steps=5, test_inner_steps=10,
                                          zero_head=True)),
               "full": _PAPER, "paper": _PAPER.replace(options={"split": "vinyals"}),  # paper: the papers' split
               "paper-20way": _PAPER_20WAY}

    def __init__(self, n_way: int = 5, hidden: int = 64, inner_lr: float = 0.4, inner_steps: int = 1,
                 test_inner_steps: int = 3, stride: int = 2, zero_head: bool = False, backend: str = "vmap",
                 inner_optimizer: str = "sgd", inner_batch: int = 0, transductive: bool = True):
        super().__init__()
        if backend not in ("vmap", "batched", "loop") or inner_optimizer not in ("sgd", "adam"):
            raise ValueError(f"backend={backend!r} or inner_optimizer={inner_optimizer!r} is not known; use "
                             "backend 'vmap', 'batched' or 'loop' and inner_optimizer 'sgd' or 'adam'")
        if inner_steps < 0 or test_inner_steps < 0 or inner_batch < 0:
            raise ValueError(f"inner_steps={inner_steps}, test_inner_steps={test_inner_steps} and "
                             f"inner_batch={inner_batch} must be >= 0")
        if backend != "loop" and (inner_optimizer == "adam" or inner_batch):
            raise ValueError(f"inner_optimizer={inner_optimizer!r} with inner_batch={inner_batch} needs "
                             "backend='loop' (Adam's moments pass from task to task; mini-batches differ per task)")
        self.net = MAMLConv4(n_way, hidden=hidden, stride=stride)
        self.n_way, self.hidden, self.stride, self.zero_head, self.backend = n_way, hidden, stride, zero_head, backend
        self.inner_lr, self.inner_steps, self.test_inner_steps = inner_lr, inner_steps, test_inner_steps
        self.inner_optimizer, self.inner_batch, self.transductive = inner_optimizer, inner_batch, transductive
        self.generator = torch.Generator().manual_seed(0)  # the inner mini-batches; training seeds it
        if inner_optimizer == "adam":  # Adam's second moments of every parameter, flat, and its step count
            self.register_buffer("inner_sq", torch.zeros(sum(p.numel() for p in self.net.parameters())))
            self.register_buffer("inner_t", torch.zeros((), dtype=torch.long))

    @property
    def test_batch_norm(self) -> str:
        """Whose statistics normalise a query: ``"batch"`` (the queries', transductive) or ``"support+query"``."""
        return "batch" if self.transductive else "support+query"

    def config(self) -> dict:
        return dict(n_way=self.n_way, hidden=self.hidden, inner_lr=self.inner_lr, inner_steps=self.inner_steps,
                    test_inner_steps=self.test_inner_steps, stride=self.stride, zero_head=self.zero_head,
                    backend=self.backend, inner_optimizer=self.inner_optimizer, inner_batch=self.inner_batch,
                    transductive=self.transductive)

    def _moments(self) -> tuple[dict[str, torch.Tensor], int] | None:
        """Adam's state ``({name: second moment}, steps taken)`` as views of the buffers; ``None`` for SGD."""
        if self.inner_optimizer != "adam":
            return None
        shapes = {k: p.shape for k, p in self.net.named_parameters()}
        parts = self.inner_sq.split([s.numel() for s in shapes.values()])
        return {k: v.view(s) for (k, s), v in zip(shapes.items(), parts)}, int(self.inner_t)  # view: (*param.shape)

    def adapt(self, x: torch.Tensor, y: torch.Tensor, steps: int, batch_size: int = 0, moments=None):
        """``steps`` inner steps from ``θ`` on one task, task by task (the ``"loop"`` back-end and test time).

        Args:
            x, y: the task's examples ``(n, C, H, W)`` and labels ``(n,)``.
            batch_size: examples per step, from shuffled passes over ``x`` (``self.generator``); 0: all.
            moments: Adam's state from :meth:`_moments` (updated copies are returned), ``None`` for SGD.

        Returns:
            ``({name: φ̃}, moments)``, the weights detached.
        """
        theta = {k: v.detach() for k, v in self.net.named_parameters()}
        params = zero_head(theta, n_way_of(y)) if self.zero_head else theta
        batches = [None] * steps  # None: the whole task
        if batch_size and batch_size < len(x):
            passes = -(-steps * batch_size // len(x))
            order = torch.cat([torch.randperm(len(x), generator=self.generator) for _ in range(passes)])
            batches = order[:steps * batch_size].view(steps, batch_size).to(x.device)  # view: (steps, batch_size)
        sq, t = (dict(moments[0]), moments[1]) if moments is not None else (None, 0)
        for idx in batches:
            xb, yb = (x, y) if idx is None else (x[idx], y[idx])
            params = {k: p.detach().requires_grad_() for k, p in params.items()}
            with torch.enable_grad():
                logits = self.net.forward_tasks(xb[None], {k: p[None] for k, p in params.items()})[0]  # fused BatchNorm
                g = torch.autograd.grad(F.cross_entropy(logits, yb), list(params.values()))
            g = dict(zip(params, g))
            if sq is None:
                params = {k: p - self.inner_lr * g[k] for k, p in params.items()}
                continue
            t += 1  # Adam, β1 = 0: the step is g / sqrt(bias-corrected second moment)
            for k, p in params.items():
                keep = k in sq and sq[k].shape == p.shape  # a zero head of another n_way starts its moments at 0
                sq[k] = ADAM_BETA2 * (sq[k] if keep else torch.zeros_like(p)) + (1 - ADAM_BETA2) * g[k] * g[k]
                params[k] = p - self.inner_lr * g[k] / ((sq[k] / (1 - ADAM_BETA2 ** t)).sqrt() + ADAM_EPS)
        return {k: p.detach() for k, p in params.items()}, (sq, t) if sq is not None else None

    def predict(self, support_x, support_y, query_x):
        """``test_inner_steps`` inner steps on the support set, then the query logits ``(n_query_total, n_way)``."""
        if self.inner_optimizer == "sgd" and self.transductive:
            return adapted_logits(self.net, support_x, support_y, query_x, self.inner_lr, self.test_inner_steps,
                                  self.zero_head)
        check_head(self.net, support_x, support_y, query_x, self.zero_head)
        phi, _ = self.adapt(support_x, support_y, self.test_inner_steps, 0, self._moments())  # moments unchanged
        with torch.no_grad():
            if self.transductive:
                return self.net(query_x, phi)
            return vmap(lambda q: self.net(torch.cat([support_x, q[None]]), phi)[-1])(query_x)  # one query at a time

    def task_weights(self, batch) -> dict[str, torch.Tensor]:
        """``φ̃`` of every task: ``inner_steps`` inner steps on its support and query examples together.

        Args:
            batch: an Episode batch, ``support_x`` ``(B, n_way * n_shot, C, H, W)``.

        Returns:
            ``{name: (B, *param.shape)}`` adapted weights, detached.
        """
        x = torch.cat([batch.support_x, batch.query_x], dim=1)  # (B, n_way*(n_shot+n_query), C, H, W)
        y = torch.cat([batch.support_y, batch.query_y], dim=1)  # (B, n_way*(n_shot+n_query))
        n_way = n_way_of(batch.support_y) if self.zero_head else None
        if self.backend == "loop":  # one task after another, Adam's moments passed along
            moments, phis = self._moments(), []
            for xb, yb in zip(x, y):
                phi, moments = self.adapt(xb, yb, self.inner_steps, self.inner_batch, moments)
                phis.append(phi)
            if moments is not None:  # into the buffers (a zero head of another n_way keeps none)
                for k, v in self._moments()[0].items():
                    if moments[0][k].shape == v.shape:
                        v.copy_(moments[0][k])
                self.inner_t.fill_(moments[1])
            return {k: torch.stack([phi[k] for phi in phis]) for k in phis[0]}  # each (n_tasks, *shape): the tasks' adapted weights
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
            logits = (vmap(self.net, in_dims=(0, 0))(batch.query_x, phi) if self.backend == "vmap"
                      else self.net.forward_tasks(batch.query_x, phi))  # (B, n_query_total, n_way)
            loss = F.cross_entropy(logits.flatten(0, 1), batch.query_y.flatten())  # flatten: (B*n_query_total, ...)
            acc = (logits.argmax(dim=-1) == batch.query_y).float().mean()
        optimizer.zero_grad(set_to_none=True)
        for name, p in self.net.named_parameters():
            p.grad = None if self.zero_head and name.startswith("head.") else p.detach() - phi[name].mean(dim=0)
        optimizer.step()
        return {"loss": loss.item(), "accuracy": acc.item()}
