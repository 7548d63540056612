"""MAML and first-order MAML: learn an initialisation that adapts in a few gradient steps.

Taught in ``notebooks/05_maml.ipynb``.

Finn, Abbeel and Levine 2017, "Model-Agnostic Meta-Learning for Fast Adaptation
of Deep Networks", arXiv:1703.03400. For each task, the inner loop takes a few
steps of gradient descent on the support loss, ``φ = θ - α ∇_θ L_support(θ)``;
the outer loop minimises the query loss of the adapted weights, ``L_query(φ)``,
averaged over a meta-batch of tasks. Second-order MAML differentiates through
the inner gradients; first-order MAML (FOMAML) treats them as constants, so
``∇_θ L_query(φ) ≈ ∇_φ L_query(φ)``.

Three interchangeable back-ends compute the same meta-gradient: ``"vmap"`` runs
every task of a meta-batch at once with ``torch.func`` (:func:`inner_loop`, which
Reptile and test-time adaptation share, inside ``vmap``); ``"batched"`` stacks the
tasks' weights and runs them as one network in one autograd graph
(:func:`inner_loop_tasks`, ``MAMLConv4.forward_tasks``), the fastest on a CPU, which the
``full`` and ``paper`` recipes use; ``"loop"`` runs one task at a time with
``torch.autograd.grad(create_graph=True)``. ``benchmarks/maml_vs_l2l.py`` measures them
against learn2learn. ``vmap`` stays the default because it made the committed quick
checkpoints, which their recipes reproduce bit for bit.

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
from .base import FewShotClassifier, register, register_preset

# Quick recipes (a 2-core CPU): a fixed number of steps, small meta-batches and queries, a larger meta
# learning rate annealed to zero (cosine), the zeroing trick and 20-way training episodes (2 per
# meta-batch: as many images per step as 8 five-way episodes), which a zero head allows; tested 5-way.
# MAML's quick recipe has the paper's 64 filters and 10,000 meta-steps (about 1600 CPU-seconds on one
# thread); first-order MAML's is the 5-minute one (32 filters, 2400 steps). Full and paper: the paper
# (Finn et al. 2017, Section 5.2: 64 filters, α = 0.4, one inner step, meta-batch 32, Adam 1e-3); paper also
# takes the paper's split (Vinyals et al.), full keeps the course's alphabet split. One query per class: the
# paper does not say, its code does (cbfinn/maml, main.py: Omniglot tasks draw 2K examples per class, K to adapt
# on and K to meta-update with), so a 1-shot meta-step sees 10 images per task, not the 80 of 15 queries.
# Full and paper train with the batched back-end, the fastest; the default (vmap) made the committed quick
# checkpoints, which their recipes reproduce bit for bit.
_QUICK = Recipe(n_way=20, n_shot=1, n_query=3, meta_batch=2, lr=5e-3, schedule="cosine", steps=2400,
                val_every=300, val_episodes=100,
                model=dict(n_way=5, hidden=32, inner_lr=0.4, inner_steps=1, test_inner_steps=1, zero_head=True))
_PAPER = Recipe(n_way=5, n_shot=1, n_query=1, meta_batch=32, lr=1e-3, steps=60_000, val_every=1000,
                val_episodes=500, model=dict(n_way=5, hidden=64, inner_lr=0.4, inner_steps=1, test_inner_steps=3,
                           backend="batched"),
                note="Finn et al. 2017, Section 5.2 (Omniglot, 5-way 1-shot); 3 inner steps at test time, as the "
                     "paper's text (its code: 10); the head reads the flattened 256 features and BatchNorm learns a "
                     "scale (its code: their 2x2 mean, 64 features, and no scale; models/maml_conv.py)")
# The paper trains a separate 20-way model (its code's README: meta-batch 16, α = 0.1, five inner steps); at test
# time its code takes 10 inner steps on Omniglot (main.py, test_num_updates). Validated on 20-way episodes.
_PAPER_20WAY = _PAPER.replace(n_way=20, meta_batch=16, val_n_way=20, options={"split": "vinyals"},
                              model=dict(n_way=20, inner_lr=0.1, inner_steps=5, test_inner_steps=10),
                              note="Finn et al. 2017, Section 5.2, and cbfinn/maml's README (Omniglot, 20-way 1-shot); "
                                   "10 inner steps at test time, as its code (main.py; the paper's text: 5); the head "
                                   "reads the flattened 256 features and BatchNorm learns a scale (its code: their 2x2 "
                                   "mean, 64 features, and no scale; models/maml_conv.py)")


def inner_loop(net: MAMLConv4, theta: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, inner_lr: float,
               steps: int, n_way: int | None = None, first_order: bool = False) -> dict[str, torch.Tensor]:
    """The inner loop of MAML and Reptile: ``steps`` steps of ``φ ← φ − α ∇_φ CE(net(x, φ), y)`` from ``φ = θ``.

    Written with ``torch.func.grad``, it adapts one task, a meta-batch under ``vmap``, inside an outer
    ``grad`` (second-order MAML) and under ``torch.no_grad()`` (test time) alike.

    Args:
        net, theta: the network, called as ``net(x, params)``, and the weights ``θ`` (``{name: tensor}``).
        x, y: the task's images ``(n, C, H, W)`` and labels ``(n,)``.
        inner_lr: the step size ``α``.
        n_way: start from a zero ``(n_way, D)`` head (the zeroing trick); ``None``: from ``θ``'s head.
        first_order: treat the inner gradients as constants (first-order MAML).

    Returns:
        The adapted weights ``φ``, ``{name: tensor}``; they depend on ``θ`` (only through the identity
        if ``first_order``: that is first-order MAML's meta-gradient).
    """
    params = theta if n_way is None else zero_head(theta, n_way)
    for _ in range(steps):
        g = grad(lambda p: F.cross_entropy(net(x, p), y))(params)
        params = {k: p - inner_lr * (g[k].detach() if first_order else g[k]) for k, p in params.items()}
    return params


def inner_loop_tasks(net: MAMLConv4, theta: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                     inner_lr: float, steps: int, n_way: int | None = None,
                     first_order: bool = False) -> dict[str, torch.Tensor]:
    """:func:`inner_loop` for a batch of tasks at once, with plain autograd (:meth:`MAMLConv4.forward_tasks`).

    One graph holds every task, so one ``torch.autograd.grad`` gives each task its own inner gradient (the
    tasks' losses are summed, and task ``b``'s loss depends only on task ``b``'s weights). Second order
    keeps the inner gradients' graph (``create_graph``); first order treats them as constants.

    Args:
        theta: the weights ``θ``, ``{name: tensor}``, shared by the tasks.
        x, y: the tasks' images ``(B, n, C, H, W)`` and labels ``(B, n)``.

    Returns:
        ``{name: (B, *param.shape)}``, each task's adapted weights ``φ_b``.
    """
    n_tasks = x.shape[0]
    params = {k: v.expand(n_tasks, *v.shape) for k, v in theta.items()}  # (B, *param.shape): every task starts at θ
    if n_way is not None:  # the zeroing trick: each task's head starts at zero (leaves of the graph)
        w = theta["head.weight"]
        params["head.weight"] = w.new_zeros(n_tasks, n_way, w.shape[1], requires_grad=True)
        params["head.bias"] = w.new_zeros(n_tasks, n_way, requires_grad=True)
    for _ in range(steps):
        logits = net.forward_tasks(x, params)  # (B, n, n_way)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / y.shape[1]  # (B*n, n_way) against (B*n,); Σ_b mean_b
        g = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
        params = {k: p - inner_lr * gk for (k, p), gk in zip(params.items(), g)}
    return params


def zero_head(theta: dict[str, torch.Tensor], n_way: int) -> dict[str, torch.Tensor]:
    """``θ`` with a zero ``(n_way, D)`` head, where the zeroing trick starts every inner loop (a leaf of its graph)."""
    w = theta["head.weight"]
    return {**theta, "head.weight": w.new_zeros(n_way, w.shape[1], requires_grad=True),
            "head.bias": w.new_zeros(n_way, requires_grad=True)}


def check_head(net: MAMLConv4, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
               zero_head: bool) -> int:
    """The episode's ``n_way`` (:meth:`FewShotClassifier.check_support`), which the head must have unless it is zero."""
    n_way = FewShotClassifier.check_support(support_x, support_y, query_x)
    if n_way != net.n_way and not zero_head:
        raise ValueError(f"the support set has n_way={n_way} but this network's head has {net.n_way} outputs; use "
                         f"episodes with n_way={net.n_way}, build the method with n_way={n_way} or use zero_head=True")
    return n_way


def adapted_logits(net: MAMLConv4, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
                   inner_lr: float, steps: int, zero_head: bool) -> torch.Tensor:
    """Test-time adaptation of MAML and Reptile: :func:`inner_loop` on the support set, then the query logits.

    Args:
        support_x, support_y: ``(n_way * n_shot, C, H, W)`` and ``(n_way * n_shot,)``.
        query_x: ``(n_query_total, C, H, W)`` (one batch: BatchNorm uses its statistics).
        zero_head: start from a zero head (episodes of any ``n_way``); else ``n_way`` must be the head's.

    Returns:
        ``(n_query_total, n_way)`` logits (no graph attached).
    """
    n_way = check_head(net, support_x, support_y, query_x, zero_head)
    phi = inner_loop(net, dict(net.named_parameters()), support_x, support_y, inner_lr, steps,
                     n_way if zero_head else None, first_order=True)
    with torch.no_grad():
        return net(query_x, {k: v.detach() for k, v in phi.items()})


@register("maml")
class MAML(FewShotClassifier):
    """Second-order MAML on the paper's Conv-4 (batch-statistics BatchNorm, linear head).

    Args:
        n_way: classes per episode (the head has ``n_way`` outputs).
        hidden: filters per convolution.
        inner_lr: the inner step size ``α``.
        inner_steps: inner steps ``S`` during meta-training (``K`` is kept for the shots).
        test_inner_steps: inner steps at test time (usually more than ``inner_steps``).
        stride: 2 for the paper's strided Omniglot network, 1 for max-pooling.
        backend: ``"vmap"`` (torch.func, all tasks at once), ``"batched"`` (all tasks in one autograd graph,
            :func:`inner_loop_tasks`; the fastest on a CPU) or ``"loop"`` (autograd, task by task).
        zero_head: start every inner loop from a zero head (Kao et al. 2022); episodes of any
            ``n_way`` are then allowed.
        first_order: treat the inner gradients as constants (first-order MAML, registered as ``fomaml``).
    """

    needs_grad_at_test = True
    test_batch_norm = "batch"  # the paper's Conv-4 normalises with each batch's statistics (transductive)
    RECIPES = {"quick": _QUICK.replace(steps=10_000, val_every=500, model={"hidden": 64}),
               "full": _PAPER, "paper": _PAPER.replace(options={"split": "vinyals"}), "paper-20way": _PAPER_20WAY}

    def __init__(self, n_way: int = 5, hidden: int = 64, inner_lr: float = 0.4, inner_steps: int = 1,
                 test_inner_steps: int = 3, stride: int = 2, backend: str = "vmap", zero_head: bool = False,
                 first_order: bool = False):
        super().__init__()
        if backend not in ("vmap", "batched", "loop"):
            raise ValueError(f"backend={backend!r} is not known; use 'vmap', 'batched' or 'loop'")
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

    def meta_learned(self, name: str) -> bool:
        """Whether ``θ``'s parameter ``name`` is meta-learned (a zero head restarts in every task: it is not)."""
        return not (self.zero_head and name.startswith("head."))

    def predict(self, support_x, support_y, query_x):
        """``test_inner_steps`` steps of :func:`inner_loop` on the support set, then the query logits (:func:`adapted_logits`).

        Args:
            support_x, support_y: ``(n_way * n_shot, C, H, W)`` and ``(n_way * n_shot,)``.
            query_x: ``(n_query_total, C, H, W)``, one batch (BatchNorm uses its statistics).

        Returns:
            ``(n_query_total, n_way)`` logits (no graph attached).
        """
        return adapted_logits(self.net, support_x, support_y, query_x, self.inner_lr, self.test_inner_steps,
                              self.zero_head)

    def meta_gradient(self, batch) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The meta-gradient of the mean query loss of a batch of episodes w.r.t. ``θ``.

        Args:
            batch: an :class:`~fslcourse.data.episodes.Episode` batch, ``support_x`` of shape
                ``(B, n_way * n_shot, C, H, W)``.

        Returns:
            ``({name: gradient}, mean query loss, mean query accuracy)``.
        """
        params = dict(self.net.named_parameters())
        n_way = batch.n_way if self.zero_head else None
        if self.backend == "vmap":  # torch.func all the way: grad of (vmap over tasks of (grad inside))
            def task_query_loss(p, support_x, support_y, query_x, query_y):
                logits = self.net(query_x, inner_loop(self.net, p, support_x, support_y, self.inner_lr,
                                                      self.inner_steps, n_way, self.first_order))
                return F.cross_entropy(logits, query_y), (logits.argmax(dim=1) == query_y).float().mean()

            def mean_query_loss(p):  # with a zero head, θ's head gets no gradient
                losses, accs = vmap(task_query_loss, in_dims=(None, 0, 0, 0, 0))(
                    p, batch.support_x, batch.support_y, batch.query_x, batch.query_y)
                return losses.mean(), (losses.mean(), accs.mean())
            grads, (loss, acc) = grad(mean_query_loss, has_aux=True)(params)
            return grads, loss.detach(), acc
        if self.backend == "batched":  # every task in one graph, plain autograd
            phi = inner_loop_tasks(self.net, params, batch.support_x, batch.support_y, self.inner_lr,
                                   self.inner_steps, n_way, self.first_order)
            logits = self.net.forward_tasks(batch.query_x, phi)  # (B, n_query_total, n_way)
            loss = F.cross_entropy(logits.flatten(0, 1), batch.query_y.flatten())  # flatten: (B*n_query_total, ...)
            acc = (logits.argmax(dim=-1) == batch.query_y).float().mean()
        else:
            losses, accs = [], []
            for ep in batch:  # task by task with torch.autograd.grad(create_graph=True), as learn2learn does
                phi = params if n_way is None else zero_head(params, n_way)
                for _ in range(self.inner_steps):
                    g = torch.autograd.grad(F.cross_entropy(self.net(ep.support_x, phi), ep.support_y),
                                            list(phi.values()), create_graph=not self.first_order)
                    phi = {k: p - self.inner_lr * gk for (k, p), gk in zip(phi.items(), g)}
                logits = self.net(ep.query_x, phi)
                losses.append(F.cross_entropy(logits, ep.query_y))
                accs.append((logits.argmax(dim=1) == ep.query_y).float().mean())
            loss, acc = torch.stack(losses).mean(), torch.stack(accs).mean()  # (meta_batch,) -> scalars
        # with a zero head, θ's head gets no gradient: zeros
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=self.zero_head)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), grads)]
        return dict(zip(params, grads)), loss.detach(), acc

    def train_step(self, batch, optimizer):
        """One meta-update: :meth:`meta_gradient` into ``.grad``, then ``optimizer.step()``."""
        optimizer.zero_grad(set_to_none=True)
        grads, loss, acc = self.meta_gradient(batch)
        for name, p in self.net.named_parameters():
            p.grad = grads[name]
        optimizer.step()
        return {"loss": loss.item(), "accuracy": acc.item()}


# First-order MAML is MAML with a flag (its quick recipe is the 5-minute one: 32 filters, 2400 steps).
FOMAML = register_preset("fomaml", MAML, recipes={"quick": _QUICK, **{k: MAML.RECIPES[k] for k in ("full", "paper", "paper-20way")}},
                         first_order=True)
