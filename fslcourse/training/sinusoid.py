"""The three sinusoid regressors of ``notebooks/05_maml.ipynb``, trained by the one loop.

``checkpoints/sinusoid-quick.pt`` holds MAML meta-trained with K = 5 and K = 10 points per task
and the baseline fitted to all tasks at once (recipes in :mod:`fslcourse.methods.maml_regression`).
"""
from __future__ import annotations

from pathlib import Path

from ..data.sinusoid import SinusoidTasks
from ..evaluate import mean_ci95
from ..io import atomic_torch_save, check_target, file_source, load_checkpoint
from ..methods.maml_regression import RECIPES, SinusoidMAML, SinusoidMLP, SinusoidPretrained, adaptation_mse
from ..pretrained import CHECKPOINT_DIR
from ..results import versions
from .loop import TrainingStopped, fit
from .trainers import regression

CLASSES = {"maml": SinusoidMAML, "pretrain": SinusoidPretrained}


def train_sinusoid(recipe: str = "quick", seed: int = 0, progress: bool = False, **changes) -> tuple[dict, dict]:
    """Train the three regressors of ``RECIPES[recipe]``; returns ``({name: model}, record)``.

    Raises:
        TrainingStopped: a regressor stopped before its last step (Ctrl-C, ``max_seconds``): no record of a
            finished run is made from it, and the regressors after it are not trained.
    """
    models, record = {}, {"seed": seed, "recipe_name": recipe, "train_seconds": {}, "cpu_seconds": {},
                          "recipes": {}, "logs": {}}
    for name, r in RECIPES[recipe].items():
        r = r.replace(seed=seed, **changes)
        run = regression(CLASSES[r.options["objective"]], r)
        result = fit(run.trained, run.batches, r, optimizer=run.optimizer, scheduler=run.scheduler,
                     streams=run.streams, label=f"sinusoid {name}", progress=progress)
        if result.stopped != "steps":
            raise TrainingStopped(f"sinusoid {name} stopped at step {result.steps} of {r.steps} ({result.stopped}); "
                                  "no checkpoint was written: run it again to the end")
        models[name] = result.model
        record["train_seconds"][name], record["cpu_seconds"][name] = result.seconds, result.cpu_seconds
        record["recipes"][name], record["logs"][name] = r.as_dict(), result.log.as_dict()
        record["iterations"] = r.steps
    record["metrics"] = sinusoid_metrics(models, seed)
    return models, record


def sinusoid_metrics(models: dict, seed: int = 0, n_tasks: int = 100, steps: int = 10, lr: float = 0.01) -> dict:
    """What a sinusoid checkpoint stores as its metrics: each model's query MSE after 0..``steps`` steps.

    ``n_tasks`` test tasks per K in (5, 10), drawn from ``SinusoidTasks(seed=1000 + seed)`` (tasks that
    training never drew; notebook 05 plots the same curves), 100 query points each.

    Returns:
        ``{"protocol", "query_mse": {"K=5": {name: {"mean": [steps + 1], "ci95": [steps + 1]}}, "K=10": ...}}``.
    """
    tasks, out = SinusoidTasks(seed=1000 + seed), {}
    for k in (5, 10):
        episode = tasks.sample(n_tasks, k, 100)
        out[f"K={k}"] = {}
        for name, model in models.items():
            stats = [mean_ci95(row) for row in adaptation_mse(model, episode, lr=lr, steps=steps)]  # (steps + 1,)
            out[f"K={k}"][name] = {"mean": [m for m, _ in stats], "ci95": [c for _, c in stats]}
    return {"protocol": {"n_tasks": n_tasks, "n_query": 100, "lr": lr, "steps": steps, "task_seed": 1000 + seed},
            "query_mse": out}


def _load_sinusoid(path: str | Path | None = None, seed: int = 0, save: bool = True, recipe: str = "quick") -> dict:
    """The regressors from ``path`` (default the committed ``sinusoid-{recipe}.pt``) if present, else trained with
    ``recipe`` (and saved); what ``load_or_train("sinusoid", recipe)`` returns.

    Returns:
        ``{"models": {"maml_k5", "maml_k10", "pretrained"}, "record", "checkpoint" (``None`` if trained now),
        "trained": bool, "source"}``; the record holds the seed, the iterations and the training seconds of each
        model.
    """
    package_file = checkpoint_file(recipe)  # an unknown recipe is refused, a path given or not
    path = Path(path) if path is not None else package_file
    trained, ckpt = not path.exists(), None
    if trained:
        models, record = train_sinusoid(recipe, seed)
        if save:
            _save(models, record, path)
    else:
        ckpt = load_checkpoint(path)
        models, record = {}, ckpt["record"]
        for name, state in ckpt["state_dicts"].items():
            models[name] = SinusoidMLP()
            models[name].load_state_dict(state)
    return {"models": {k: m.eval() for k, m in models.items()}, "record": record, "checkpoint": ckpt, "trained": trained,
            "source": file_source(path) if path.exists() else None}


def checkpoint_file(recipe: str = "quick") -> Path:
    """``checkpoints/sinusoid-{recipe}.pt``."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe {recipe!r} is not known for sinusoid; use one of {', '.join(RECIPES)}")
    return CHECKPOINT_DIR / f"sinusoid-{recipe}.pt"


def _save(models: dict, record: dict, path: Path) -> Path:
    return atomic_torch_save({"state_dicts": {k: m.state_dict() for k, m in models.items()}, "record": record,
                              "versions": versions()}, path)


def train_sinusoid_file(recipe: str = "quick", *, out: str | Path | None = None, overwrite: bool = False,
                        seed: int = 0, progress: bool = True) -> Path:
    """``python -m fslcourse train sinusoid --recipe R``: train the three regressors and write their checkpoint.

    The target is checked before any work (an existing file needs ``overwrite``); the file is written
    atomically when all three are trained.
    """
    if recipe not in RECIPES:
        raise ValueError(f"sinusoid has no recipe {recipe!r}; use one of {', '.join(RECIPES)}")
    out = Path(out) if out is not None else checkpoint_file(recipe)
    check_target(out, overwrite)
    models, record = train_sinusoid(recipe, seed, progress=progress)
    return _save(models, record, out)
