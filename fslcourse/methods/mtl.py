"""Meta-Transfer Learning (MTL): scale and shift a frozen pre-trained backbone, with hard-task meta-batches.

Taught in ``notebooks/06_mtl.ipynb``; :mod:`fslcourse.training` runs the recipes below
(phase 1: the ``pretrain`` trainer; phase 2: the ``meta-transfer`` trainer, with the hard-task hook).

Sun, Liu, Chua & Schiele (2019), "Meta-Transfer Learning for Few-Shot Learning",
arXiv:1812.02391. Three phases:

1. *large-scale training*: a deep backbone Θ and a classifier over all meta-train
   classes are trained with cross-entropy; Θ is then frozen and that classifier dropped;
2. *meta-transfer*: every convolution of Θ gets a per-filter scale Φ_S1 (init 1) and
   shift Φ_S2 (init 0) (:mod:`fslcourse.models.scale_shift`). Per task, the inner loop
   fits only the few-shot head θ on the support features; the outer loop updates Φ and
   θ's initialisation from the query loss of the adapted head. *Hard tasks* (HT): after
   each ordinary meta-batch the class with the lowest query accuracy of every task is
   recorded; once ``n_way`` distinct failure classes are recorded, new tasks are drawn
   from those classes only, with new support and query examples, and trained on;
3. *meta-test*: Φ is fixed and only the head adapts to each new task.

Episode labels are arbitrary, so θ's initialisation is class-symmetric: the weights
start at the normalised class means of the support features (as proto-MAML,
Triantafillou et al. 2019, arXiv:1903.03096), the bias at 0, and the cosine
temperature ``s`` is meta-learned. BatchNorm keeps Θ's running statistics (batch
statistics would cancel the shift and scale). The ablation rows of the notebook are
registered as methods: ``mtl`` (SS + HT), ``mtl-no-ht``, ``mtl-ft`` (meta-train every
weight of Θ instead of Φ) and ``mtl-theta-only`` (no phase 2).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data.episodes import Episode, draw_episode
from ..models import make_backbone
from ..models.scale_shift import add_scale_shift, scale_shift_layers
from ..recipe import Recipe
from .base import FewShotClassifier, check_episode, check_query_y, prototypes, register, register_preset

MODES = ("ss", "ft", "theta")

# Phase 1 (``mtl-theta-only``): a ResNetSmall and a linear classifier over all 3,384 meta-train classes,
# mini-batches of 128 classes × 2 images, Adam with a cosine decay to 5%. Phase 2 (``mtl``, ``mtl-no-ht``,
# ``mtl-ft``): outer steps of 2 tasks (20-way 1-shot, 3 queries per class, all classes of a task from one
# alphabet), plus a hard-task batch of 2 tasks whenever n_way distinct failure classes are recorded; the
# best Φ on meta-validation episodes of the same protocol is kept. Phase 2 starts from the committed
# phase-1 checkpoint (``options["phase1"]``), or trains it first.
_VAL = dict(val_n_way=20, val_n_shot=1, val_n_query=5, val_within_alphabet=True)
PHASE1 = {
    "quick": Recipe(trainer="pretrain", n_way=128, n_shot=2, steps=400, lr=2e-3, schedule="cosine-closed",
                    schedule_kwargs={"floor": 0.05}, val_every=0, val_episodes=50, model={"widths": (16, 32, 64)},
                    **_VAL),
    "full": Recipe(trainer="pretrain", n_way=128, n_shot=4, steps=20_000, lr=1e-3, schedule="cosine-closed",
                   schedule_kwargs={"floor": 0.05}, val_every=0, val_episodes=300,
                   model={"widths": (64, 128, 256)}, **_VAL),
}
PHASE2 = {
    "quick": Recipe(trainer="meta-transfer", n_way=20, n_shot=1, n_query=3, within_alphabet=True, meta_batch=2,
                    steps=250, lr=2e-3, val_every=50, val_episodes=50, model={"widths": (16, 32, 64)},
                    options={"hard_tasks": 2, "phase1": "mtl-theta-only"}, **_VAL),
    "full": Recipe(trainer="meta-transfer", n_way=20, n_shot=1, n_query=5, within_alphabet=True, meta_batch=4,
                   steps=10_000, lr=1e-3, val_every=500, val_episodes=300, model={"widths": (64, 128, 256)},
                   options={"hard_tasks": 4, "phase1": "mtl-theta-only"}, **_VAL),
}
_NO_OMNIGLOT = "Sun et al. 2019 (arXiv:1812.02391) give no Omniglot recipe: the course's full recipe"
PHASE1["paper"], PHASE2["paper"] = (r["full"].replace(note=_NO_OMNIGLOT) for r in (PHASE1, PHASE2))


def failure_classes(logits: torch.Tensor, query_y: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """The class with the lowest query accuracy of one task (ties: the higher mean query loss).

    Args:
        logits: ``(n_way * n_query, n_way)`` query logits.
        query_y: ``(n_way * n_query,)`` labels in ``0 .. n_way-1``.
        classes: ``(n_way,)`` the task's class ids in its split.

    Returns:
        ``()`` the failure class's id in the split.
    """
    n_way = len(classes)
    hits = (logits.argmax(1) == query_y).float()
    losses = F.cross_entropy(logits, query_y, reduction="none").detach().clamp_max(100.0)
    count = torch.bincount(query_y, minlength=n_way).clamp_min(1)
    acc = torch.zeros(n_way, device=hits.device).index_add_(0, query_y, hits) / count  # (n_way,)
    loss = losses.new_zeros(n_way).index_add_(0, query_y, losses) / count  # (n_way,)
    worst = acc == acc.min()  # (n_way,) the classes of the lowest accuracy
    return classes[torch.where(worst, loss, -1.0).argmax()]  # of those, the higher loss (losses are >= 0)


def hard_task_batch(split, failure_pool, n_way: int, n_shot: int, n_query: int, n_tasks: int,
                    generator: torch.Generator) -> Episode:
    """Re-sample ``n_tasks`` tasks whose classes all come from the recorded failure classes.

    Every task draws ``n_way`` distinct classes from ``failure_pool`` and new support
    and query examples of them (a fresh permutation of each class's examples).

    Args:
        split: the meta-train :class:`~fslcourse.data.splits.ImageSplit`.
        failure_pool: recorded failure class ids (repeats are counted once).
        n_way, n_shot, n_query: task sizes; n_tasks: how many tasks.
        generator: CPU generator for the classes and examples.

    Returns:
        A batch :class:`Episode` (``support_x``: ``(n_tasks, n_way * n_shot, C, H, W)``).
    """
    pool = torch.unique(torch.as_tensor(failure_pool, dtype=torch.long).cpu())
    if len(pool) < n_way:
        raise ValueError(f"only {len(pool)} distinct failure classes recorded but a hard task needs n_way={n_way}; "
                         "record more ordinary meta-batches first")
    episodes = [draw_episode(split, pool[torch.randperm(len(pool), generator=generator)[:n_way]], n_shot, n_query,
                             generator) for _ in range(n_tasks)]  # each task: n_way classes of the pool
    return Episode.collate(episodes)


@register("mtl")
class MTL(FewShotClassifier):
    """MTL on a frozen pre-trained backbone (Sun et al. 2019, arXiv:1812.02391).

    Args:
        widths: the stage widths of the default backbone, a :class:`~fslcourse.models.ResNetSmall`.
        backbone: ``"resnet"`` (the paper's choice: a residual network) or ``"conv4"`` (the Conv-4 of the other
            methods, with ``hidden`` filters), so MTL can be compared with them on an equal backbone.
        hidden: Conv-4's filters (``backbone="conv4"`` only).
        mode: ``"ss"`` (learn Φ), ``"ft"`` (learn every weight of Θ) or ``"theta"`` (Θ stays as pre-trained).
        hard_tasks: train on hard-task meta-batches (used by the recipe's training loop).
        inner_lr, inner_steps: the head's inner loop during meta-training (plain gradient descent).
        test_inner_steps: inner steps at meta-test.
        scale: initial cosine temperature ``s``.
    """

    needs_grad_at_test = True
    RECIPES = PHASE2

    def __init__(self, widths=(16, 32, 64), mode: str = "ss", hard_tasks: bool = True,
                 inner_lr: float = 0.5, inner_steps: int = 5, test_inner_steps: int = 10, scale: float = 10.0,
                 backbone: str = "resnet", hidden: int = 64):
        super().__init__()
        if backbone not in ("resnet", "conv4"):
            raise ValueError(f"backbone={backbone!r} is not known; use 'resnet' or 'conv4'")
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not known; use one of {', '.join(MODES)}")
        if inner_steps < 0 or test_inner_steps < 0:
            raise ValueError(f"inner_steps={inner_steps} and test_inner_steps={test_inner_steps} must be >= 0")
        self.widths, self.mode = [int(w) for w in widths], mode
        self.hard_tasks = bool(hard_tasks)
        self.inner_lr, self.inner_steps, self.test_inner_steps = inner_lr, inner_steps, test_inner_steps
        self.backbone_name, self.hidden = backbone, int(hidden)
        self.backbone = (make_backbone("resnet", in_channels=1, widths=self.widths) if backbone == "resnet"
                         else make_backbone("conv4", in_channels=1, hidden=self.hidden))
        if mode == "ss":
            add_scale_shift(self.backbone)  # Θ frozen; only Φ is trainable in the backbone
        elif mode == "theta":
            self.backbone.requires_grad_(False)
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))  # part of θ's initialisation

    def config(self) -> dict:
        return dict(widths=self.widths, mode=self.mode, hard_tasks=self.hard_tasks, inner_lr=self.inner_lr,
                    inner_steps=self.inner_steps, test_inner_steps=self.test_inner_steps,
                    scale=math.exp(self.log_scale.item()), backbone=self.backbone_name, hidden=self.hidden)

    def load_backbone(self, state: dict) -> None:
        """Load a plain (phase-1) backbone's state dict into Θ, whatever the mode."""
        renamed = dict(state)
        for name in scale_shift_layers(self.backbone):
            for key in ("weight", "bias"):
                if f"{name}.{key}" in renamed:
                    renamed[f"{name}.conv.{key}"] = renamed.pop(f"{name}.{key}")
        missing, unexpected = self.backbone.load_state_dict(renamed, strict=False)
        if unexpected or any(not k.endswith((".scale", ".shift")) for k in missing):
            arch = f"ResNetSmall(widths={self.widths})" if self.backbone_name == "resnet" else f"Conv4({self.hidden})"
            raise ValueError(f"the state dict does not match {arch}: "
                             f"missing {missing}, unexpected {unexpected}")

    def train(self, mode: bool = True):
        """Train mode everywhere except the backbone's BatchNorm, which keeps Θ's running statistics."""
        super().train(mode)
        self.backbone.eval()
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, 1, 28, 28) -> (n, D)`` features of the (scaled and shifted) backbone (``widths[-1]`` or ``hidden``)."""
        return self.backbone(x)

    def head_logits(self, z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``(n, D)`` features -> ``(n, n_way)`` logits ``s cos(z, w_k) + b_k``."""
        return self.log_scale.exp() * F.normalize(z, dim=1) @ F.normalize(weight, dim=1).T + bias

    def adapt(self, z_support: torch.Tensor, support_y: torch.Tensor, n_way: int, steps: int,
              create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The inner loop: ``steps`` gradient steps of the head θ = (W, b) on the support loss.

        Args:
            z_support: ``(n_way * n_shot, D)`` support features.
            support_y: ``(n_way * n_shot,)`` labels.
            n_way: classes of the task.
            steps: inner steps.
            create_graph: keep the inner gradients' graph (meta-training differentiates through them).

        Returns:
            ``(weight (n_way, D), bias (n_way,))`` of the adapted head.
        """
        weight = F.normalize(prototypes(z_support, support_y, n_way), dim=1)  # W_0: normalised class means
        bias = torch.zeros(n_way, dtype=z_support.dtype, device=z_support.device, requires_grad=True)
        if not (create_graph and weight.requires_grad):  # no graph to keep back to the backbone
            weight = weight.detach().requires_grad_()
        with torch.enable_grad():
            for _ in range(steps):
                loss = F.cross_entropy(self.head_logits(z_support, weight, bias), support_y)
                g_w, g_b = torch.autograd.grad(loss, (weight, bias), create_graph=create_graph)
                weight, bias = weight - self.inner_lr * g_w, bias - self.inner_lr * g_b
        return weight, bias

    def predict(self, support_x, support_y, query_x):
        """Adapt the head on the support set, then return the query logits.

        In training mode the result keeps the graph back to Φ (and Θ for ``mode="ft"``)
        and to ``s`` through ``inner_steps`` inner steps; in eval mode Θ and Φ are fixed
        and the head takes ``test_inner_steps`` steps (phase 3).

        Args:
            support_x: ``(n_way * n_shot, C, H, W)``.
            support_y: ``(n_way * n_shot,)``.
            query_x: ``(n_query_total, C, H, W)``.

        Returns:
            ``(n_query_total, n_way)`` logits.
        """
        n_way = self.check_support(support_x, support_y, query_x)
        with torch.set_grad_enabled(self.training and torch.is_grad_enabled()):
            z = self.embed(torch.cat([support_x, query_x]))  # (n_support + n_query_total, D)
        z_support, z_query = z[: len(support_x)], z[len(support_x):]
        steps = self.inner_steps if self.training else self.test_inner_steps
        weight, bias = self.adapt(z_support, support_y, n_way, steps, create_graph=self.training)
        logits = self.head_logits(z_query, weight, bias)
        return logits if self.training else logits.detach()

    def loss(self, episode) -> tuple[torch.Tensor, torch.Tensor]:
        """Query cross-entropy and accuracy of one task; also records its failure class in ``self.failures``.

        The shared :meth:`~fslcourse.methods.base.FewShotClassifier.train_step` calls this for
        every task of a meta-batch, so the hard-task (HT) batch can be built from the record.
        """
        check_episode(episode)
        logits = self.predict(episode.support_x, episode.support_y, episode.query_x)
        check_query_y(episode.query_y, logits)
        self.failures = getattr(self, "failures", []) + [int(failure_classes(logits, episode.query_y, episode.classes))]
        return F.cross_entropy(logits, episode.query_y), (logits.argmax(1) == episode.query_y).float().mean()


# The ablation rows are presets of MTL: no hard tasks; FT (meta-train every weight of the backbone instead
# of its scales and shifts); θ only (no meta-transfer: only the head adapts on the frozen phase-1 backbone).
register_preset("mtl-no-ht", MTL, mode="ss", hard_tasks=False)
register_preset("mtl-ft", MTL, mode="ft", hard_tasks=False)
register_preset("mtl-theta-only", MTL, recipes=PHASE1, mode="theta", hard_tasks=False)
