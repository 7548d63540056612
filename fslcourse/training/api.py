"""``train(name, recipe)`` and ``load_or_train``: what ``python -m fslcourse train NAME --recipe R`` runs.

Taught in ``notebooks/02_protonet.ipynb``.

:func:`train` looks up the method's ``RECIPES[recipe]``, checks the output path before
any work, sets the run up with the recipe's trainer (:mod:`.trainers`), runs the one
loop (:func:`~fslcourse.training.loop.fit`), measures the result on fixed meta-test
episodes and writes the checkpoint with the whole recipe, the log and the metrics.
A run that stops early (Ctrl-C, ``max_seconds``) writes no checkpoint: its training
state stays beside the target, and ``resume=True`` continues it bit for bit.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..config import PROFILES, get_device, get_profile
from ..evaluate import evaluate
from ..methods.base import get_method
from ..pretrained import RECIPE_NAMES, checkpoint_path, load_method, save_method
from ..recipe import Recipe
from .loop import FitResult, fit
from .trainers import TRAINERS, meta_transfer


def recipe_for(name: str, recipe: str | Recipe = "quick", **changes) -> tuple[str, Recipe]:
    """``(recipe name, Recipe)`` of method ``name``: ``RECIPES[recipe]`` with ``changes`` applied.

    Raises:
        ValueError: the method trains nothing, or has no such recipe (the message lists them).
    """
    cls = get_method(name)
    if not cls.trainable:
        raise ValueError(f"method {name!r} has no trainable parameters, so there is nothing to train; "
                         f"evaluate it directly with `python -m fslcourse evaluate {name}`")
    if isinstance(recipe, Recipe):
        return "custom", recipe.replace(**changes)
    recipes = getattr(cls, "RECIPES", {})
    if recipe not in recipes:
        raise ValueError(f"method {name!r} has no recipe {recipe!r}; use one of {', '.join(recipes) or 'none'}")
    return recipe, recipes[recipe].replace(**changes) if changes else recipes[recipe]


def state_path_for(out: Path) -> Path:
    """Where the resumable training state of a run that writes ``out`` lives: beside it."""
    return out.with_name(out.name.removesuffix(".pt") + ".state.pt")


def check_target(out: Path, overwrite: bool) -> None:
    """Refuse, before any work, a checkpoint path that exists (without ``overwrite``) or cannot be written."""
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists; pass overwrite=True (--overwrite) to replace it, or choose another "
                         "--out")
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK) or (out.exists() and out.is_dir()):
        raise ValueError(f"cannot write {out}: {parent} is not writable or the target is a folder; choose another --out")


def test_protocol(recipe_name: str, n_episodes: int | None = None) -> dict:
    """The meta-test episodes a checkpoint is measured on: 5-way 1-shot, seed 0, the profile's size."""
    prof = get_profile(recipe_name if recipe_name in PROFILES else "full")
    return {"split": "test", "n_way": 5, "n_shot": 1, "n_query": prof.n_query,
            "n_episodes": n_episodes or prof.eval_episodes, "seed": 0}


def _phase1_state(name: str, recipe_name: str, recipe: Recipe, data, device, progress,
                  phase1: Recipe | dict | None = None) -> tuple[dict, dict]:
    """MTL's phase-1 backbone: ``phase1`` if it is a backbone's state dict, else the committed checkpoint named by
    ``recipe.options["phase1"]``, else trained (with ``phase1`` if it is a recipe, else that method's recipe of
    the same name)."""
    if isinstance(phase1, dict):
        return phase1, {"phase1": "given by the caller", "phase1_seconds": 0.0}
    source = recipe.options["phase1"]
    path = checkpoint_path(source, recipe_name if recipe_name in RECIPE_NAMES else "quick")
    if phase1 is None and path.exists():
        model, ckpt = load_method(path, "cpu", expect=source)
        if ckpt["seed"] == recipe.seed:
            return model.backbone.state_dict(), {"phase1": str(path.name), "phase1_seconds": ckpt["train_seconds"]}
    model, result = train(source, phase1 or recipe_name, data=data, save=False, device=device, progress=progress)
    return ({k: v.cpu() for k, v in model.backbone.state_dict().items()},
            {"phase1": f"trained: {source} {recipe_name}", "phase1_seconds": result.seconds})


def train(name: str, recipe: str | Recipe = "quick", *, data=None, out: str | Path | None = None,
          state: str | Path | None = None, resume: bool = False, overwrite: bool = False, save: bool = True,
          device=None, progress: bool = True, eval_episodes: int | None = None, phase1: Recipe | dict | None = None,
          **changes):
    """Train method ``name`` with its recipe and (``save``) write its checkpoint.

    Args:
        name: a registered method.
        recipe: a recipe name of the method (``quick``, ``full``, ``paper``) or a :class:`Recipe`.
        data: ``train``/``val``/``test`` splits (default: Omniglot).
        out: the checkpoint (default: the package's ``checkpoints/NAME-RECIPE.pt``); must not exist
            unless ``overwrite``.
        state: the resumable training state (default: beside ``out``; ``None`` with ``save=False``); an
            existing one is continued (``resume``) or replaced (``overwrite``), never silently.
        resume: continue the run saved in ``state``.
        device: where to train.
        eval_episodes: meta-test episodes behind the recorded accuracy (default: the profile's).
        phase1: for MTL's phase 2, train the phase-1 backbone with this recipe instead of loading it, or
            start from this backbone state dict (its phase-1 time is then not counted in the checkpoint).
        changes: recipe fields to change (``steps=100``).

    Returns:
        ``(model, FitResult)``; ``FitResult.stopped`` says whether the run finished (``"steps"``).
    """
    recipe_name, r = recipe_for(name, recipe, **changes)
    device = get_device(device)
    out = Path(out) if out is not None else (checkpoint_path(name, recipe_name) if save else None)
    if save:
        check_target(out, overwrite)
    state = Path(state) if state is not None else (state_path_for(out) if save else None)
    if resume and (state is None or not state.exists()):
        raise ValueError(f"nothing to resume: no training state at {state}; start without --resume")
    if not resume and not overwrite and state is not None and state.exists():
        raise ValueError(f"{state} holds an unfinished run; continue it with --resume, or pass --overwrite to "
                         "start again and replace it")
    if data is None:
        from ..data import load_omniglot
        data = load_omniglot(device=device, progress=progress, split=r.options.get("split", "alphabet"))
    extra = {}
    if r.trainer == "meta-transfer":
        state1, extra = _phase1_state(name, recipe_name, r, data, device, progress, phase1)
        run = meta_transfer(name, r, data, device, state1)
    else:
        run = TRAINERS[r.trainer](name, r, data, device)
    result = fit(run.trained, run.batches, r, optimizer=run.optimizer, scheduler=run.scheduler,
                 validate=run.validate, hook=run.hook, streams=run.streams, state_path=state, resume=resume,
                 label=name, progress=progress)
    for p in run.info.get("refreeze", []):
        p.requires_grad_(False)
    model = run.method.eval()
    result.model = model
    if result.stopped != "steps" or not save:
        return model, result
    for key in ("tasks_seen", "hard_batches"):
        if hasattr(model, key):
            extra[key] = getattr(model, key)
    write_checkpoint(model, out, name=name, recipe_name=recipe_name, recipe=r, result=result, data=data,
                     device=device, eval_episodes=eval_episodes, extra=extra)
    if state is not None:
        state.unlink(missing_ok=True)
    return model, result


def write_checkpoint(model, out: Path, *, name: str, recipe_name: str, recipe: Recipe, result: FitResult, data,
                     device, eval_episodes: int | None = None, extra: dict | None = None) -> Path:
    """Measure ``model`` on the fixed meta-test episodes and save it with its recipe, log and metrics."""
    protocol = test_protocol(recipe_name, eval_episodes)
    res = evaluate(model, data.test, protocol["n_way"], protocol["n_shot"], protocol["n_query"],
                   protocol["n_episodes"], seed=protocol["seed"], device=device)
    metrics = {"test_accuracy": res.accuracy, "test_ci95": res.ci95, "protocol": protocol,
               "test_episode_accuracies": res.episode_accuracies, "val_accuracy": result.best_score,
               "best_step": result.best_step, "steps": result.steps, "interrupted": result.interrupted}
    seconds = result.seconds + (extra or {}).get("phase1_seconds", 0.0)
    return save_method(model, out, seed=recipe.seed, profile=recipe_name, train_seconds=seconds, metrics=metrics,
                       recipe=recipe.as_dict(), recipe_name=recipe_name, steps=result.steps, run=dict(extra or {}),
                       cpu_seconds=result.cpu_seconds, log=result.log.as_dict(), device=str(device),
                       split_protocol=getattr(data.train, "protocol", None))


def load_or_train(name: str, recipe: str = "quick", *, data=None, device=None, progress: bool = True):
    """The committed checkpoint of ``name`` for ``recipe`` if it exists, else :func:`train` it (and save it).

    Returns:
        ``(model, checkpoint dict or None, FitResult or None)``.
    """
    path = checkpoint_path(name, recipe)
    if path.exists():
        model, ckpt = load_method(path, device, expect=name)
        return model, ckpt, None
    model, result = train(name, recipe, data=data, device=device, progress=progress)
    return model, None, result
