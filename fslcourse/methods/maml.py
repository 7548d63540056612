"""MAML and first-order MAML: learn an initialisation that adapts in a few gradient steps.

Taught in ``notebooks/04_maml.ipynb``.

Finn, Abbeel and Levine 2017, "Model-Agnostic Meta-Learning for Fast Adaptation
of Deep Networks", arXiv:1703.03400. For each task, the inner loop takes ``K``
steps of gradient descent on the support loss, ``φ = θ - α ∇_θ L_support(θ)``;
the outer loop minimises the query loss of the adapted weights, ``L_query(φ)``,
averaged over a meta-batch of tasks. Second-order MAML differentiates through
the inner gradients; first-order MAML (FOMAML) treats them as constants, so
``∇_θ L_query(φ) ≈ ∇_φ L_query(φ)``.

Two interchangeable back-ends compute the same meta-gradient: ``"vmap"`` runs
every task of a meta-batch at once with ``torch.func`` (``grad`` inside
``vmap``), ``"loop"`` runs one task at a time with
``torch.autograd.grad(create_graph=True)``. ``benchmarks/maml_vs_l2l.py``
measures both against learn2learn; ``vmap`` is the faster one on CPU, so it is
the default.

``zero_head=True`` is the *zeroing trick* of Kao, Chiu and Chen 2022, "MAML is a
Noisy Contrastive Learner in Classification", arXiv:2106.15367: the linear head
starts every inner loop at zero instead of at a meta-learned value. After one
inner step the head's row for class ``c`` is ``α/n · Σ_i (1[y_i = c] - 1/n_way) f(x_i)``,
a scaled class mean of the support features (prototype-like), so the outer loop
only has to learn the features. It removes the dependence on the order of the
labels, lets one network run episodes of any ``n_way``, and speeds up training.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import grad, vmap

from ..models.maml_conv import MAMLConv4
from ..recipe import Recipe
from .base import FewShotClassifier, n_way_of, register, register_preset

# Quick recipes (a 2-core CPU): a fixed number of steps, small meta-batches and queries, a larger meta
# learning rate annealed to zero (cosine), the zeroing trick and 20-way training episodes (2 per
# meta-batch: as many images per step as 8 five-way episodes), which a zero head allows; tested 5-way.
# MAML's quick recipe has the paper's 64 filters and 10,000 meta-steps (about 2200 CPU-seconds on one
# thread); first-order MAML's is the 5-minute one (32 filters, 2400 steps). Full and paper: the paper
# (Finn et al. 2017, Section 5.2: 64 filters, α = 0.4, one inner step, meta-batch 32, Adam 1e-3).
_QUICK = Recipe(n_way=20, n_shot=1, n_query=3, meta_batch=2, lr=5e-3, schedule="cosine", steps=2400,
                val_every=300, val_episodes=100,
                model=dict(n_way=5, hidden=32, inner_lr=0.4, inner_steps=1, test_inner_steps=1, zero_head=True))
_PAPER = Recipe(n_way=5, n_shot=1, n_query=15, meta_batch=32, lr=1e-3, steps=60_000, val_every=1000,
                val_episodes=500, model=dict(n_way=5, hidden=64, inner_lr=0.4, inner_steps=1, test_inner_steps=3),
                note="Finn et al. 2017, Section 5.2 (Omniglot, 5-way 1-shot)")


@register("maml")
class MAML(FewShotClassifier):
    """Second-order MAML on the paper's Conv-4 (batch-statistics BatchNorm, linear head).

    Args:
        n_way: classes per episode (the head has ``n_way`` outputs).
        hidden: filters per convolution.
        inner_lr: the inner step size ``α``.
        inner_steps: inner steps ``K`` during meta-training.
        test_inner_steps: inner steps at test time (usually more than ``inner_steps``).
        stride: 2 for the paper's strided Omniglot network, 1 for max-pooling.
        backend: ``"vmap"`` (torch.func, all tasks at once) or ``"loop"`` (autograd, task by task).
        zero_head: start every inner loop from a zero head (Kao et al. 2022); episodes of any
            ``n_way`` are then allowed.
        first_order: treat the inner gradients as constants (first-order MAML, registered as ``fomaml``).
    """

    needs_grad_at_test = True
    RECIPES = {"quick": _QUICK.replace(steps=10_000, val_every=500, model={"hidden": 64}),
               "full": _PAPER, "paper": _PAPER}

    def __init__(self, n_way: int = 5, hidden: int = 64, inner_lr: float = 0.4, inner_steps: int = 1,
                 test_inner_steps: int = 3, stride: int = 2, backend: str = "vmap", zero_head: bool = False,
                 first_order: bool = False):
        super().__init__()
        if backend not in ("vmap", "loop"):
            raise ValueError(f"backend={backend!r} is not known; use 'vmap' or 'loop'")
        if inner_steps < 0 or test_inner_steps < 0:
            raise ValueError(f"inner_steps={inner_steps} and test_inner_steps={test_inner_steps} must be >= 0")
        self.net = MAMLConv4(n_way, hidden=hidden, stride=stride)
        self.n_way, self.hidden, self.stride, self.backend = n_way, hidden, stride, backend
        self.inner_lr, self.inner_steps, self.test_inner_steps = inner_lr, inner_steps, test_inner_steps
        self.zero_head, self.first_order = zero_head, bool(first_order)

    def config(self) -> dict:
        return dict(n_way=self.n_way, hidden=self.hidden, inner_lr=self.inner_lr, inner_steps=self.inner_steps,
                    test_inner_steps=self.test_inner_steps, stride=self.stride, backend=self.backend,
                    zero_head=self.zero_head, first_order=self.first_order)

    def start_from(self, params: dict[str, torch.Tensor], n_way: int) -> dict[str, torch.Tensor]:
        """``params`` as an inner loop starts from them: with a zero ``(n_way, D)`` head if ``zero_head``."""
        if not self.zero_head:
            return params
        w = params["head.weight"]
        return {**params, "head.weight": w.new_zeros(n_way, w.shape[1]), "head.bias": w.new_zeros(n_way)}

    def meta_learned(self, name: str) -> bool:
        """Whether ``θ``'s parameter ``name`` is meta-learned (a zero head restarts in every task: it is not)."""
        return not (self.zero_head and name.startswith("head."))

    def initial_params(self, n_way: int) -> dict[str, torch.Tensor]:
        """The weights each inner loop starts from: ``θ``, with a zero ``(n_way, D)`` head if ``zero_head``."""
        params = self.start_from(dict(self.net.named_parameters()), n_way)
        for name, p in params.items():
            if not self.meta_learned(name):
                p.requires_grad_()  # a fresh zero head: a leaf of the inner loop's graph
        return params

    def _support_loss(self, params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.net(x, params), y)

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor, steps: int | None = None,
              create_graph: bool = False) -> dict[str, torch.Tensor]:
        """The inner loop for one task: ``steps`` gradient steps from ``θ`` on the support loss.

        Args:
            support_x: ``(n_way * n_shot, C, H, W)``.
            support_y: ``(n_way * n_shot,)``.
            steps: inner steps (default ``test_inner_steps``).
            create_graph: keep the graph of the inner gradients (second-order meta-gradient).

        Returns:
            The adapted weights ``φ`` as ``{name: tensor}``; with ``create_graph=False`` the
            inner gradients are constants, so ``φ`` still depends on ``θ`` through the identity
            (that is first-order MAML's meta-gradient).
        """
        params = self.initial_params(n_way_of(support_y))
        steps = self.test_inner_steps if steps is None else steps
        with torch.enable_grad():  # adaptation needs gradients even under torch.no_grad()
            for _ in range(steps):
                loss = self._support_loss(params, support_x, support_y)
                grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
                params = {k: p - self.inner_lr * (g if create_graph else g.detach())
                          for (k, p), g in zip(params.items(), grads)}
        return params

    def predict(self, support_x, support_y, query_x):
        """Adapt on the support set (``test_inner_steps`` steps), then return the query logits.

        Args:
            support_x: ``(n_way * n_shot, C, H, W)``.
            support_y: ``(n_way * n_shot,)``.
            query_x: ``(n_query_total, C, H, W)`` (one batch: BatchNorm uses its statistics).

        Returns:
            ``(n_query_total, n_way)`` logits (no graph attached).
        """
        n_way = self.check_support(support_x, support_y, query_x)
        if n_way != self.n_way and not self.zero_head:
            raise ValueError(f"the support set has n_way={n_way} but this MAML head has {self.n_way} outputs; "
                             f"use episodes with n_way={self.n_way}, build MAML(n_way={n_way}) or use zero_head=True")
        params = {k: v.detach() for k, v in self.adapt(support_x, support_y).items()}
        with torch.no_grad():
            return self.net(query_x, params)

    def _task_query_loss(self, params, support_x, support_y, query_x, query_y):
        """One task with torch.func (used under vmap): inner loop, then query loss and accuracy."""
        for _ in range(self.inner_steps):
            grads = grad(self._support_loss)(params, support_x, support_y)
            params = {k: p - self.inner_lr * (grads[k].detach() if self.first_order else grads[k])
                      for k, p in params.items()}
        logits = self.net(query_x, params)
        return F.cross_entropy(logits, query_y), (logits.argmax(dim=1) == query_y).float().mean()

    def meta_gradient(self, batch) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The meta-gradient of the mean query loss of a batch of episodes w.r.t. ``θ``.

        Args:
            batch: an :class:`~fslcourse.data.episodes.Episode` batch, ``support_x`` of shape
                ``(B, n_way * n_shot, C, H, W)``.

        Returns:
            ``({name: gradient}, mean query loss, mean query accuracy)``.
        """
        params = dict(self.net.named_parameters())
        n_way = batch.n_way
        if self.backend == "vmap":  # torch.func all the way: grad of (vmap over tasks of (grad inside))
            def mean_query_loss(p):
                p = self.start_from(p, n_way)  # with a zero head, θ's head gets no gradient
                losses, accs = vmap(self._task_query_loss, in_dims=(None, 0, 0, 0, 0))(
                    p, batch.support_x, batch.support_y, batch.query_x, batch.query_y)
                return losses.mean(), (losses.mean(), accs.mean())
            grads, (loss, acc) = grad(mean_query_loss, has_aux=True)(params)
            return grads, loss.detach(), acc
        losses, accs = [], []
        for ep in batch:
            adapted = self.adapt(ep.support_x, ep.support_y, self.inner_steps, create_graph=not self.first_order)
            logits = self.net(ep.query_x, adapted)
            losses.append(F.cross_entropy(logits, ep.query_y))
            accs.append((logits.argmax(dim=1) == ep.query_y).float().mean())
        loss = torch.stack(losses).mean()
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=self.zero_head)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), grads)]
        return dict(zip(params, grads)), loss.detach(), torch.stack(accs).mean()

    def train_step(self, batch, optimizer):
        """One meta-update: :meth:`meta_gradient` into ``.grad``, then ``optimizer.step()``."""
        optimizer.zero_grad(set_to_none=True)
        grads, loss, acc = self.meta_gradient(batch)
        for name, p in self.net.named_parameters():
            p.grad = grads[name]
        optimizer.step()
        return {"loss": loss.item(), "accuracy": acc.item()}


# First-order MAML is MAML with a flag (its quick recipe is the 5-minute one: 32 filters, 2400 steps).
FOMAML = register_preset("fomaml", MAML, recipes={"quick": _QUICK, "full": _PAPER, "paper": _PAPER}, first_order=True)
