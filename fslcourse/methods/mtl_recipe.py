"""Training recipes of meta-transfer learning: phase 1 (large-scale training) and phase 2 (meta-transfer).

Taught in ``notebooks/05_mtl.ipynb``; the method is :mod:`fslcourse.methods.mtl`.

The quick recipes use step budgets (the same seed gives the same model on any
machine). Phase 1 trains a ResNetSmall (widths 16-32-64) and a linear classifier
over all 3,384 meta-train classes for 400 mini-batches of 128 classes × 2 images.
Phase 2 meta-trains for 250 outer steps of 2 tasks (20-way 1-shot, 3 queries per
class, all classes of a task from one alphabet), plus a hard-task batch of 2
tasks whenever ``n_way`` distinct failure classes are recorded; the best Φ on
meta-validation episodes of the same protocol is kept. ``mtl-theta-only`` is
phase 1 alone; the other rows load its backbone (``load if present, else train``).
"""
from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..config import get_device, seed_everything
from ..data.episodes import EpisodeSampler
from ..evaluate import evaluate
from ..models.resnet import ResNetSmall
from ..train import FitResult, History
from .mtl import hard_task_batch

PHASE1 = {"quick": dict(widths=(16, 32, 64), batch_classes=128, per_class=2, steps=400, lr=2e-3),
          "full": dict(widths=(64, 128, 256), batch_classes=128, per_class=4, steps=20_000, lr=1e-3)}
PHASE2 = {"quick": dict(n_way=20, n_shot=1, n_query=3, within_alphabet=True, meta_batch=2, hard_tasks=2,
                        steps=250, lr=2e-3, val_every=50, val_episodes=50),
          "full": dict(n_way=20, n_shot=1, n_query=5, within_alphabet=True, meta_batch=4, hard_tasks=4,
                       steps=10_000, lr=1e-3, val_every=500, val_episodes=300)}


def pretrain_backbone(split, widths=(16, 32, 64), batch_classes: int = 128, per_class: int = 2, steps: int = 400,
                      lr: float = 2e-3, seed: int = 0, device=None, progress: bool = True):
    """Phase 1: a ResNetSmall plus a linear classifier over every class of ``split``, cross-entropy.

    Mini-batches of ``batch_classes`` random classes × ``per_class`` images; Adam with a
    cosine decay to 5% of ``lr`` over ``steps``.

    Returns:
        ``(backbone state dict (the classifier is discarded), {"loss": [...], "accuracy": [...], "seconds"})``.
    """
    device = get_device(device)
    seed_everything(seed)
    backbone = ResNetSmall(1, widths).to(device)
    classifier = torch.nn.Linear(backbone.out_dim, split.n_classes).to(device)
    params = list(backbone.parameters()) + list(classifier.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)))
    g = torch.Generator().manual_seed(seed)
    log, start = {"loss": [], "accuracy": []}, time.perf_counter()
    backbone.train()
    for _ in tqdm(range(steps), desc="phase 1: large-scale training", disable=not progress):
        classes = torch.randperm(split.n_classes, generator=g)[:batch_classes]  # (batch_classes,)
        examples = torch.rand(batch_classes, split.n_examples, generator=g).argsort(1)[:, :per_class]
        x = split.get(classes, examples).flatten(0, 1).to(device)  # (batch_classes * per_class, 1, 28, 28)
        y = classes.repeat_interleave(per_class).to(device)  # (batch_classes * per_class,)
        logits = classifier(backbone(x))  # (n, n_classes)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        log["loss"].append(loss.item())
        log["accuracy"].append((logits.argmax(1) == y).float().mean().item())
    log["seconds"] = time.perf_counter() - start
    return {k: v.detach().cpu() for k, v in backbone.state_dict().items()}, log


def phase1_backbone(data, profile: str, seed: int, device, progress: bool, retrain: bool = False):
    """The phase-1 backbone: from the committed ``mtl-theta-only`` checkpoint if present, else trained.

    Returns:
        ``(state dict, seconds it took to train)``.
    """
    from ..io import load_checkpoint
    from ..pretrained import checkpoint_path

    path = checkpoint_path("mtl-theta-only", profile)
    if path.exists() and not retrain:
        ckpt = load_checkpoint(path)
        if ckpt["seed"] == seed:
            return ({k[len("backbone."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("backbone.")},
                    ckpt["train_seconds"])
    state, log = pretrain_backbone(data.train, seed=seed, device=device, progress=progress, **PHASE1[profile])
    return state, log["seconds"]


def meta_transfer(model, train_split, val_split=None, *, n_way: int, n_shot: int, n_query: int,
                  within_alphabet: bool, meta_batch: int, hard_tasks: int, steps: int, lr: float,
                  val_every: int = 50, val_episodes: int = 50, seed: int = 0, device=None, progress: bool = True,
                  on_step=None) -> FitResult:
    """Phase 2: outer loop on Φ (or Θ for ``mode="ft"``) and θ's initialisation, with hard-task batches.

    Args:
        model: an :class:`~fslcourse.methods.mtl.MTL` holding the phase-1 backbone.
        train_split, val_split: meta-train and meta-validation splits (``val_split=None``: keep the last Φ).
        n_way, n_shot, n_query, within_alphabet: the training tasks.
        meta_batch: ordinary tasks per outer step.
        hard_tasks: tasks in a hard batch (used when ``model.hard_tasks``).
        steps: ordinary outer steps; lr: Adam learning rate.
        val_every, val_episodes: validation on the training protocol; the best weights are kept.
        seed: seeds the task samplers.
        on_step: optional ``callback(model, n_tasks_seen)`` run before the first and after every outer step
            (learning curves); the model is put back in training mode after it.

    Returns:
        A :class:`~fslcourse.train.FitResult`; ``history.step`` counts outer steps and
        ``model.tasks_seen`` the tasks (ordinary + hard).
    """
    device = get_device(device)
    model.to(device)
    train_split = train_split.to(device)
    sampler = EpisodeSampler(train_split, n_way, n_shot, n_query, seed=seed, within_alphabet=within_alphabet)
    g_hard = torch.Generator().manual_seed(seed + 1)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    hist, best, start = History(), (None, None, None), time.perf_counter()
    model.train()
    model.failures, model.tasks_seen, model.hard_batches = [], 0, 0
    if on_step is not None:
        on_step(model, 0)
        model.train()

    def validate(step):
        nonlocal best
        res = evaluate(model, val_split, n_way, n_shot, 5, val_episodes, seed=0, within_alphabet=within_alphabet,
                       device=device)
        model.train()
        hist.val_step.append(step), hist.val_accuracy.append(res.accuracy), hist.val_ci95.append(res.ci95)
        if best[0] is None or res.accuracy > best[0]:
            best = (res.accuracy, step, copy.deepcopy(model.state_dict()))

    for step in tqdm(range(1, steps + 1), desc=f"phase 2: meta-transfer ({model.name})", disable=not progress):
        stats = model.train_step(sampler.sample_batch(meta_batch), optimizer)
        model.tasks_seen += meta_batch
        if model.hard_tasks and len(set(model.failures)) >= n_way:  # HT: re-sample from the failure classes
            model.train_step(hard_task_batch(train_split, model.failures, n_way, n_shot, n_query, hard_tasks, g_hard),
                             optimizer)
            model.tasks_seen += hard_tasks
            model.hard_batches += 1
            model.failures = []
        hist.step.append(step), hist.loss.append(stats["loss"]), hist.accuracy.append(stats["accuracy"])
        hist.seconds.append(time.perf_counter() - start)
        if on_step is not None:
            on_step(model, model.tasks_seen)
            model.train()
        if val_split is not None and (step % val_every == 0 or step == steps):
            validate(step)
    if best[2] is not None:
        model.load_state_dict(best[2])
    model.eval()
    return FitResult(model, hist, best[0], best[1], time.perf_counter() - start, steps)


def train_mtl(cls, data, profile: str = "quick", seed: int = 0, device=None, progress: bool = True, **overrides):
    """Build ``cls`` (an MTL row), give it the phase-1 backbone, and run phase 2 unless it is ``mtl-theta-only``.

    ``overrides`` replace phase-2 recipe entries (``steps=100``). Returns ``(model, fit_result)``;
    ``fit_result.seconds`` includes phase 1.
    """
    device = get_device(device)
    recipe = {**PHASE2[profile], **overrides}
    model = cls(widths=PHASE1[profile]["widths"])
    state, phase1_seconds = phase1_backbone(data, profile, seed, device, progress, retrain=model.mode == "theta")
    model.load_backbone(state)
    model.to(device)
    if model.mode == "theta":
        res = evaluate(model, data.val, recipe["n_way"], recipe["n_shot"], 5, recipe["val_episodes"], seed=0,
                       within_alphabet=recipe["within_alphabet"], device=device)
        result = FitResult(model.eval(), History(), res.accuracy, 0, phase1_seconds, PHASE1[profile]["steps"])
    else:
        seed_everything(seed)
        result = meta_transfer(model, data.train, data.val, seed=seed, device=device, progress=progress, **recipe)
        result.seconds += phase1_seconds
    result.recipe = {"phase1": PHASE1[profile], "phase2": recipe, "phase1_seconds": phase1_seconds,
                     "tasks_seen": getattr(model, "tasks_seen", 0), "hard_batches": getattr(model, "hard_batches", 0)}
    return model, result
