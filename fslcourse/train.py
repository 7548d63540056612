"""One episodic training loop for every method in the course.

Taught in ``notebooks/02_protonet.ipynb``; MAML, MTL and the rest reuse it.

Each step draws a meta-batch of episodes from the meta-train split and calls
the method's ``train_step``. Every ``val_every`` steps the method is evaluated
on fixed meta-validation episodes and the best weights are kept (in memory and,
if a checkpoint path is given, on disk with an atomic write). Interrupting the
run (Ctrl-C or the notebook's stop button) keeps the best model so far and says
so. :func:`load_or_train` loads a checkpoint when it exists and trains otherwise.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .config import get_device
from .data.episodes import EpisodeSampler
from .data.splits import ImageSplit
from .evaluate import evaluate
from .methods.base import FewShotClassifier


@dataclass
class History:
    """What happened during training: per-step loss/accuracy and periodic validation."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    val_ci95: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def plot(self, smooth: int = 20, title: str | None = None):
        """Loss and accuracy curves (training smoothed over ``smooth`` steps, validation as points)."""
        import matplotlib.pyplot as plt

        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.2))
        if self.step:
            k = max(1, min(smooth, len(self.loss)))
            kernel = torch.ones(k) / k
            sm = lambda v: torch.conv1d(torch.tensor(v)[None, None], kernel[None, None]).flatten().tolist()  # noqa: E731
            ax_loss.plot(self.step[k - 1:], sm(self.loss), label="train (smoothed)")
            ax_acc.plot(self.step[k - 1:], [100 * a for a in sm(self.accuracy)], label="train (smoothed)")
        if self.val_step:
            ax_acc.errorbar(self.val_step, self.val_accuracy, yerr=self.val_ci95, fmt="o-", ms=3,
                            label="meta-validation (95% CI)")
        ax_loss.set(xlabel="step", ylabel="query loss", title="loss")
        ax_acc.set(xlabel="step", ylabel="accuracy (%)", title="accuracy")
        ax_acc.legend(loc="lower right")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return fig


@dataclass
class FitResult:
    """The trained model (best validation weights), its history and how the run ended."""

    model: FewShotClassifier
    history: History
    best_val_accuracy: float | None
    best_step: int | None
    seconds: float
    steps: int
    interrupted: bool = False


def fit(method: FewShotClassifier, train_split: ImageSplit, val_split: ImageSplit | None = None, *,
        n_way: int, n_shot: int, n_query: int, steps: int, optimizer: torch.optim.Optimizer,
        scheduler=None, meta_batch: int = 1, max_seconds: float | None = None, val_every: int = 100,
        val_episodes: int = 100, val_n_way: int | None = None, val_n_shot: int | None = None,
        val_n_query: int = 5, seed: int = 0, device=None, checkpoint: str | Path | None = None,
        checkpoint_extra: dict | None = None, profile: str = "quick", progress: bool = True) -> FitResult:
    """Meta-train ``method`` episodically, keeping the best weights on meta-validation.

    Args:
        method: the model; its ``train_step(batch, optimizer)`` does one update.
        train_split: meta-train split.
        val_split: meta-validation split (``None``: no validation, keep the last weights).
        n_way, n_shot, n_query: training episode sizes.
        steps: maximum number of meta-batches.
        optimizer: over ``method``'s parameters.
        scheduler: optional learning-rate scheduler, stepped once per step.
        meta_batch: episodes per step.
        max_seconds: stop when this wall-time budget is spent (checked every step).
        val_every: validate every this many steps (and at the end).
        val_episodes, val_n_way, val_n_shot, val_n_query: the validation protocol
            (default: the training ``n_way``/``n_shot``).
        seed: seeds the training episode sampler; validation always uses seed 0.
        device: where to train; default :func:`fslcourse.config.get_device`.
        checkpoint: if given, the best model is saved there atomically.
        checkpoint_extra: extra fields stored in the checkpoint.
        profile: recorded in the checkpoint.
        progress: show a tqdm progress bar.

    Returns:
        A :class:`FitResult` whose ``model`` holds the best validation weights.
    """
    from .pretrained import save_method

    device = get_device(device)
    method.to(device)
    train_split = train_split.to(device) if train_split.device != device else train_split
    sampler = EpisodeSampler(train_split, n_way, n_shot, n_query, seed=seed)
    hist = History()
    best = (None, None, None)  # (accuracy, step, state_dict)
    start = time.perf_counter()
    step = 0
    interrupted = False

    def validate():
        nonlocal best
        res = evaluate(method, val_split, val_n_way or n_way, val_n_shot or n_shot, val_n_query,
                       val_episodes, seed=0, device=device)
        hist.val_step.append(step)
        hist.val_accuracy.append(res.accuracy)
        hist.val_ci95.append(res.ci95)
        method.train()
        if best[0] is None or res.accuracy > best[0]:
            best = (res.accuracy, step, copy.deepcopy(method.state_dict()))
            if checkpoint is not None:
                save_method(method, checkpoint, seed=seed, profile=profile,
                            train_seconds=time.perf_counter() - start,
                            metrics={"val_accuracy": res.accuracy, "val_ci95": res.ci95, "step": step},
                            extra=checkpoint_extra)
        return res

    method.train()
    bar = tqdm(total=steps, desc=f"training {method.name}", disable=not progress)
    try:
        while step < steps:
            batch = sampler.sample_batch(meta_batch)
            stats = method.train_step(batch, optimizer)
            if scheduler is not None:
                scheduler.step()
            step += 1
            hist.step.append(step)
            hist.loss.append(stats["loss"])
            hist.accuracy.append(stats["accuracy"])
            hist.seconds.append(time.perf_counter() - start)
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{stats['loss']:.3f}", acc=f"{100 * stats['accuracy']:.1f}%")
            if val_split is not None and step % val_every == 0:
                validate()
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    if val_split is not None and not interrupted and (not hist.val_step or hist.val_step[-1] != step):
        validate()
    if best[2] is not None:
        method.load_state_dict(best[2])
    if interrupted:
        kept = (f"the best model so far (meta-validation {best[0]:.1f}% at step {best[1]})"
                if best[0] is not None else "the current weights (no validation had run yet)")
        print(f"Training interrupted at step {step}; kept {kept}.")
    method.eval()
    return FitResult(method, hist, best[0], best[1], time.perf_counter() - start, step, interrupted)


def load_or_train(path: str | Path, train_fn, device=None):
    """Load the method saved at ``path`` if it exists, else call ``train_fn()`` and return its model.

    Args:
        path: checkpoint file.
        train_fn: no-argument callable returning a :class:`FitResult`; it should save to ``path``.

    Returns:
        ``(model, checkpoint_dict_or_None, fit_result_or_None)``.
    """
    from .pretrained import load_method

    path = Path(path)
    if path.exists():
        model, ckpt = load_method(path, device)
        return model, ckpt, None
    result = train_fn()
    return result.model, None, result


def train_checkpoint(name: str, data, path: str | Path | None = None, *, profile: str = "quick", seed: int = 0,
                     device=None, progress: bool = True, **recipe_overrides):
    """Train method ``name`` with its ``train_recipe``, measure it, and save it with :func:`save_method`.

    The recorded ``metrics`` hold the meta-test accuracy the checkpoint is judged
    by: 5-way 1-shot, ``profile.n_query`` queries, ``profile.eval_episodes``
    episodes, episode seed 0 (``metrics["protocol"]``) with the per-episode
    accuracies (so a test can re-check the first few episodes exactly), plus the
    best meta-validation accuracy, the steps and the training seconds.

    Args:
        name: a registered method with a training recipe.
        data: an :class:`~fslcourse.data.omniglot.Omniglot` (train, val and test splits).
        path: where to save (default :func:`fslcourse.pretrained.checkpoint_path`).
        profile, seed, device, progress: passed to the recipe.
        recipe_overrides: passed to ``train_recipe`` (e.g. ``max_seconds``).

    Returns:
        ``(model, fit_result)``.
    """
    from .config import get_profile
    from .methods.base import get_method
    from .pretrained import checkpoint_path, save_method

    prof = get_profile(profile)
    path = Path(path) if path is not None else checkpoint_path(name, profile)
    model, result = get_method(name).train_recipe(data, profile=profile, seed=seed, device=device,
                                                  progress=progress, **recipe_overrides)
    protocol = {"split": "test", "n_way": 5, "n_shot": 1, "n_query": prof.n_query,
                "n_episodes": prof.eval_episodes, "seed": 0}
    res = evaluate(model, data.test, protocol["n_way"], protocol["n_shot"], protocol["n_query"],
                   protocol["n_episodes"], seed=protocol["seed"], device=get_device(device))
    metrics = {"test_accuracy": res.accuracy, "test_ci95": res.ci95, "protocol": protocol,
               "test_episode_accuracies": res.episode_accuracies,
               "val_accuracy": result.best_val_accuracy, "best_step": result.best_step, "steps": result.steps,
               "interrupted": result.interrupted}
    save_method(model, path, seed=seed, profile=profile, train_seconds=result.seconds, metrics=metrics,
                extra={"history": result.history.as_dict(), "recipe": getattr(result, "recipe", None)})
    return model, result
