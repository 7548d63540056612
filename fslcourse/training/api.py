"""``train(name, recipe)`` and ``load_or_train``: what ``python -m fslcourse train NAME --recipe R`` runs.

Taught in ``notebooks/02_protonet.ipynb``. Both take a method, a generator family (trained by
:mod:`.generators`) or ``"sinusoid"`` (:mod:`.sinusoid`): one name for each kind of checkpoint.

:func:`train` looks up the method's ``RECIPES[recipe]``, checks the output path before
any work, sets the run up with the recipe's trainer (:mod:`.trainers`), runs the one
loop (:func:`~fslcourse.training.loop.fit`), measures the result on fixed meta-test
episodes and writes the checkpoint with the whole recipe, the log and the metrics.
A run that stops early (Ctrl-C, ``max_seconds``) writes no checkpoint: its training
state stays beside the target, and ``resume=True`` continues it bit for bit.
"""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

import torch

from ..config import PROFILES, get_device, get_profile, whole_seed
from ..evaluate import evaluate
from ..io import check_state_path, check_target, file_source, load_checkpoint, state_path_for
from ..methods.base import METHODS, fixed_n_way, get_method
from ..pretrained import RECIPE_NAMES, checkpoint_path, load_method, save_method
from ..recipe import Recipe
from .generators import FAMILIES, FAMILY_RECIPES, LOADERS, check_family_recipe, checkpoint_file, train_generator
from .loop import FitResult, fit
from .sinusoid import RECIPES as SINUSOID_RECIPES
from .sinusoid import _load_sinusoid, train_sinusoid_file
from .sinusoid import checkpoint_file as sinusoid_file
from .trainers import TRAINERS, check_hard_tasks, meta_transfer


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


def test_protocol(recipe_name: str, n_episodes: int | None = None, n_way: int = 5) -> dict:
    """The meta-test episodes a checkpoint is measured on: 1-shot, seed 0, the profile's size; 5-way unless the
    model's head is fixed to another ``n_way`` (a paper's 20-way model)."""
    prof = get_profile(recipe_name if recipe_name in PROFILES else "full")
    return {"split": "test", "n_way": n_way, "n_shot": 1, "n_query": prof.n_query,
            "n_episodes": prof.eval_episodes if n_episodes is None else n_episodes, "seed": 0}


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
    how = phase1 or recipe_name
    changes = {} if isinstance(phase1, Recipe) else {"seed": recipe.seed}  # phase 1 from the seed asked for
    if progress:
        print(f"{name}: phase 1 is not committed at seed {recipe.seed} ({path.name}); training {source} with its "
              f"{'given' if isinstance(how, Recipe) else repr(how)} recipe first", file=sys.stderr)
    model, result = train(source, how, data=data, save=False, device=device, progress=progress, **changes)
    return ({k: v.cpu() for k, v in model.backbone.state_dict().items()},
            {"phase1": f"trained: {source} {recipe_name}", "phase1_seconds": result.seconds})


def train(name: str, recipe: str | Recipe = "quick", *, data=None, out: str | Path | None = None,
          state: str | Path | None = None, resume: bool = False, overwrite: bool = False, save: bool = True,
          device=None, progress: bool = True, eval_episodes: int | None = None, phase1: Recipe | dict | None = None,
          **changes):
    """Train method ``name`` (or a generator family, or the sinusoid regressors) with its recipe and
    (``save``) write its checkpoint: what ``python -m fslcourse train NAME --recipe R`` runs.

    Args:
        name: a registered method, a generator family (:data:`~fslcourse.training.generators.FAMILIES`) or
            ``"sinusoid"``.
        recipe: a recipe name of the method (``quick``, ``full``, ``paper``) or a :class:`Recipe`.
        data: ``train``/``val``/``test`` splits (default: Omniglot).
        out: the checkpoint (default: the package's ``checkpoints/NAME-RECIPE.pt``, which only the recipe
            unchanged writes: ``changes`` other than ``state_every`` need another ``out``); must not exist unless
            ``overwrite``.
        state: the resumable training state (default: beside ``out``; ``None`` with ``save=False``); an
            existing one is continued (``resume``) or replaced (``overwrite``), never silently.
        resume: continue the run saved in ``state``.
        device: where to train.
        eval_episodes: meta-test episodes behind the recorded accuracy (default: the profile's).
        phase1: for MTL's phase 2, train the phase-1 backbone with this recipe instead of loading it, or
            start from this backbone state dict (its phase-1 time is then not counted in the checkpoint).
        changes: recipe fields to change (``steps=100``); a generator family or sinusoid takes ``seed`` only.

    Returns:
        ``(model, FitResult)`` for a method; ``FitResult.stopped`` says whether the run finished (``"steps"``).
        A generator family's or the sinusoid checkpoint holds several models, each with its own run and log:
        ``(path of the written checkpoint, None)``; :func:`load_or_train` loads it.
    """
    if eval_episodes is not None and (isinstance(eval_episodes, bool) or not hasattr(eval_episodes, "__index__")
                                      or eval_episodes < 2):  # checked before any step, not after the run
        raise ValueError(f"eval_episodes={eval_episodes!r}: the recorded accuracy's interval needs a whole number "
                         "of 2 or more meta-test episodes; give one, or leave it out (the profile's default)")
    out, state = (Path(p).expanduser() if p is not None else None for p in (out, state))  # "~/x.pt" as a shell reads it
    if not save and out is not None:  # it was silently ignored: nothing written where the caller asked
        raise ValueError(f"out={str(out)!r} with save=False: nothing would be written there; drop out, or save=True")
    if name == "sinusoid" or name in FAMILIES:
        return _train_collection(name, recipe, out=out, state=state, resume=resume, overwrite=overwrite, save=save,
                                 device=device, progress=progress, data=data, phase1=phase1,
                                 eval_episodes=eval_episodes, **changes), None
    if name not in METHODS:  # get_method's list names methods only; train takes more
        raise ValueError(f"{name!r} is neither a registered method nor a generator family; train one of: "
                         f"{', '.join(sorted(n for n, c in METHODS.items() if c.trainable))}; "
                         f"{', '.join(FAMILIES)}; sinusoid (a new method registers once fslcourse/methods/__init__.py "
                         "imports its module)")
    recipe_name, r = recipe_for(name, recipe, **changes)
    if save and isinstance(recipe, str) and _is_package_file(out, checkpoint_path(name, recipe_name)):
        _check_unchanged(name, recipe_name, changes,
                         [k for k in get_method(name).RECIPES[recipe].differs_from(r.as_dict()) if k != "state_every"])
    if save and out is None and isinstance(recipe, Recipe):
        raise ValueError(f"a Recipe object has no checkpoint of its own in the package; give out= a file for "
                         f"this {name} run, or save=False")
    device = get_device(device)
    out = Path(out) if out is not None else (checkpoint_path(name, recipe_name) if save else None)
    if save:
        check_target(out, overwrite)
    state = Path(state) if state is not None else (state_path_for(out) if save else None)
    if state is not None:
        check_state_path(state, out)
    if resume and (state is None or not state.exists()):
        raise ValueError(f"nothing to resume: no training state at {state}; start without --resume")
    if resume and any(state.name == f"{m}-{recipe_name}.state.pt" for m in METHODS if m != name):
        if load_checkpoint(state).get("label") is None:  # written before states named their method: its file does
            other = state.name.removesuffix(f"-{recipe_name}.state.pt")
            how = (f"`python -m fslcourse train {other} --recipe {recipe_name} --state {state} --resume`"
                   if recipe_name != "custom" else f"train('{other}', <its Recipe>, state=..., resume=True)")
            raise ValueError(f"{state} is the state of a {other} run (its file name says so); resume it with "
                             f"{how}, or give {name} another state file")
    if not resume and not overwrite and state is not None and state.exists():
        raise ValueError(f"{state} holds an unfinished run; continue it with --resume, or pass --overwrite to "
                         "start again and replace it")
    if data is None:
        from ..data import load_omniglot
        data = load_omniglot(device=device, progress=progress, split=r.options.get("split", "alphabet"))
    extra = {}
    if r.trainer == "meta-transfer":
        check_hard_tasks(r)
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
    if result.stopped != "steps":
        return model, result
    if save:
        for key in ("tasks_seen", "hard_batches"):
            if hasattr(model, key):
                extra[key] = getattr(model, key)
        write_checkpoint(model, out, name=name, recipe_name=recipe_name, recipe=r, result=result, data=data,
                         device=device, eval_episodes=eval_episodes, extra=extra)
    if state is not None:  # finished (and stored, if saved): its last-step state is spent
        state.unlink(missing_ok=True)
        result.state_step = None
    return model, result


def _not_into_package(name: str, recipe: str, seed: int, recipe_seed: int, say: bool) -> bool:
    """``load_or_train``'s ``save`` for a run at ``seed`` into the package's file: ``True`` only at the recipe's own
    seed (that file is what the recipe unchanged makes); otherwise what is trained is kept in memory, and (``say``)
    said so."""
    if seed == recipe_seed:
        return True
    if say:
        print(f"{name}: seed={seed} is not the {recipe} recipe's ({recipe_seed}), so what is trained now is not "
              f"saved to the package's {name}-{recipe}.pt; give path= a file to keep it", file=sys.stderr)
    return False


def _is_package_file(out, package_file: Path) -> bool:
    """Whether a run writing ``out`` (``None``: the default) writes the package's ``NAME-RECIPE.pt``."""
    return out is None or Path(out).resolve() == package_file.resolve()


def _check_unchanged(name: str, recipe_name: str, changes: dict, changed: list[str]) -> None:
    """Refuse to write the package's ``NAME-RECIPE.pt`` from a run whose recipe fields ``changed`` (a ``--steps`` or
    ``--seed`` smoke test): that file is what ``train NAME --recipe RECIPE`` makes with the recipe unchanged."""
    if changed:
        what = ", ".join(f"{k}={changes[k]}" for k in changed)
        raise ValueError(f"{what} changes {name}'s {recipe_name} recipe, so this run would not make "
                         f"{checkpoint_path(name, recipe_name).name} (what `python -m fslcourse train {name} --recipe "
                         f"{recipe_name}` makes, with the recipe unchanged); give --out PATH (out=) a file of its own")


def write_checkpoint(model, out: Path, *, name: str, recipe_name: str, recipe: Recipe, result: FitResult, data,
                     device, eval_episodes: int | None = None, extra: dict | None = None) -> Path:
    """Measure ``model`` on the fixed meta-test episodes and save it with its recipe, log and metrics (also set on
    ``result``: ``result.checkpoint``, ``result.metrics``)."""
    protocol = test_protocol(recipe_name, eval_episodes, n_way=fixed_n_way(model) or 5)
    res = evaluate(model, data.test, protocol["n_way"], protocol["n_shot"], protocol["n_query"],
                   protocol["n_episodes"], seed=protocol["seed"], device=device)
    metrics = {"test_accuracy": res.accuracy, "test_ci95": res.ci95, "protocol": protocol,
               "test_episode_accuracies": res.episode_accuracies, "val_accuracy": result.best_score,
               "best_step": result.best_step, "steps": result.steps, "interrupted": result.interrupted}
    seconds = result.seconds + (extra or {}).get("phase1_seconds", 0.0)
    result.metrics = metrics
    result.checkpoint = save_method(model, out, seed=recipe.seed, profile=recipe_name, train_seconds=seconds,
                                    metrics=metrics, recipe=recipe.as_dict(), recipe_name=recipe_name,
                                    steps=result.steps, run=dict(extra or {}), cpu_seconds=result.cpu_seconds,
                                    log=result.log.as_dict(), device=str(device),
                                    split_protocol=getattr(data.train, "protocol", None))
    return result.checkpoint


def _train_collection(name: str, recipe, *, out, state, resume, overwrite, save, device, progress, data, phase1,
                      eval_episodes, seed: int | None = None, **changes) -> Path:
    """:func:`train` for a checkpoint of several models (a generator family, sinusoid): refuses, in one line,
    what only a method's run takes."""
    method_only = [opt for opt, given in (("--state", state), ("--steps/--state-every and other recipe changes",
                                          changes), ("save=False", not save), ("phase1", phase1),
                                          ("eval_episodes", eval_episodes)) if given]
    if name == "sinusoid":  # trained on the CPU, in one sitting
        method_only[:0] = [opt for opt, given in (("--resume", resume), ("--device", device)) if given]
    if method_only or not isinstance(recipe, str):
        what = ", ".join(method_only) or "a Recipe object (give its name)"
        raise ValueError(f"{what}: for methods only; {name} trains its whole named recipe"
                         + (" (the gan family's state is beside --out)" if name in FAMILIES else " on the CPU, in one sitting"))
    known = FAMILY_RECIPES[name] if name in FAMILIES else SINUSOID_RECIPES  # an unknown recipe: named below
    if recipe in known and _is_package_file(out, sinusoid_file(recipe) if name == "sinusoid"
                                            else checkpoint_file(name, recipe)):
        _check_unchanged(name, recipe, {"seed": seed}, ["seed"] if seed else [])
    if name == "sinusoid":
        return train_sinusoid_file(recipe, out=out, overwrite=overwrite, seed=seed or 0, progress=progress)
    return train_generator(name, recipe, data=data, out=out, overwrite=overwrite, seed=seed or 0, device=device,
                           progress=progress, resume=resume)


def load_or_train(name: str, recipe: str = "quick", *, data=None, device=None, progress: bool = True,
                  seed: int | None = None, backbone=None, path: str | Path | None = None, save: bool = True,
                  **options) -> dict:
    """The committed checkpoint of ``name`` for ``recipe`` if it exists, else trained now (and saved if ``save``).

    The notebooks' "load if present, else train", for every kind of checkpoint.

    Args:
        name: a registered method, a generator family (``vae``, ``deformation-vae``, ``gan``,
            ``deformation-gan``, ``diffusion``) or ``"sinusoid"``.
        recipe: the recipe name (``quick``, ``full``, ``paper``, or a method's own).
        data: the splits to train on if nothing is stored (default: Omniglot); only ``data.train`` is trained on.
        seed: the recipe's seed to train with (default: the recipe's; 0 for a generator or sinusoid). What is
            trained at another seed is not saved to the package's file (that is the recipe's): give ``path``.
        backbone: a generator's backbone: the feature-space VAE and hallucinator are made for it (and stored
            per backbone fingerprint), the DAGANs' quality is measured in its space, and the diffusion model is
            conditioned on it (required there). Not used by methods.
        path: the checkpoint file (default: the package's ``checkpoints/NAME-RECIPE.pt``). A method's run that
            was interrupted (its training state beside ``path``) is continued, as ``train --resume`` would.
        options: a family's own: ``changes`` (recipe fields; VAE: per model, ``{"pixel": {...}}``) for ``vae``
            and ``diffusion``; ``state`` and ``resume`` for ``gan``.

    Returns:
        A dict with ``"checkpoint"`` (what the file holds; ``None`` for an unsaved method run and for sinusoid
        regressors trained now), ``"trained"`` (what was trained now: a bool, or
        the names for ``vae`` and ``gan``), ``"source"`` (the file's name and sha256, ``None`` if nothing was
        saved), and the model(s):

        * a method: ``"model"``, and ``"result"``: the :class:`FitResult` of a run made now, else ``None``;
        * ``vae``: ``"pixel"``, ``"feature"`` (``None`` without a backbone), ``"fingerprint"``;
        * ``gan``: ``"wgan-gp"``, ``"standard"`` (if the recipe has it), ``"feature"`` (the hallucinator),
          ``"fingerprint"``;
        * ``deformation-vae``, ``deformation-gan``: ``"model"``; ``diffusion``: ``"model"``, ``"schedule"``;
        * ``sinusoid``: ``"models"`` (``maml_k5``, ``maml_k10``, ``pretrained``) and ``"record"``.
    """
    if seed is not None:
        seed = whole_seed(seed)  # said now, not after Omniglot has loaded or a file was read
    if path is not None:  # "~/models/x.pt" as a shell reads it: not a folder named "~" (the file there was not found)
        path = Path(path).expanduser()
    if isinstance(data, (tuple, list, dict)):  # e.g. glyph_splits()' (train, val, test)
        raise ValueError(f"data is a {type(data).__name__}; pass the splits as load_omniglot() returns them (with "
                         ".train and .val), or leave data out to load Omniglot")
    if name in FAMILIES:  # the family's arguments, checked before Omniglot loads
        check_family_recipe(name, recipe)
        if backbone is not None and not isinstance(backbone, torch.nn.Module):
            raise ValueError(f"backbone={backbone!r} is not a network; pass a method's backbone, e.g. "
                             "pretrained('protonet').backbone")
        if name == "diffusion" and backbone is None:
            raise ValueError("the diffusion model is conditioned on a backbone's prototypes; pass backbone= (the "
                             "committed ProtoNet's: pretrained('protonet').backbone)")
        known = [p for p in inspect.signature(LOADERS[name]).parameters if p not in (
            "data", "profile", "backbone", "seed", "device", "progress", "path", "save")]
        unknown = [k for k in options if k not in known]
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not an option of load_or_train({name!r}); its own options are "
                             f"{', '.join(known) or 'none'}")
    if path is None and save and seed and (name == "sinusoid" or name in FAMILIES):
        package_file = sinusoid_file(recipe) if name == "sinusoid" else checkpoint_file(name, recipe)
        save = _not_into_package(name, recipe, seed, 0, say=not package_file.exists())  # else: loaded, at seed 0
    if name == "sinusoid":
        return _load_sinusoid(path, seed=seed or 0, save=save, recipe=recipe)
    if name in FAMILIES:
        device = get_device(device)
        if data is None:
            from ..data import load_omniglot
            data = load_omniglot(device=device, progress=progress)
        # seed: what a missing part would be trained with (the notebooks pass theirs, which papermill may change)
        return LOADERS[name](data, recipe, backbone=backbone, seed=seed or 0, device=device, progress=progress,
                             path=path, save=save, **options)
    if options:
        raise ValueError(f"{', '.join(options)}: not an option of a method's load_or_train; it takes data, device, "
                         "progress, seed, path and save")
    if path is None and save and seed is not None and not checkpoint_path(name, recipe).exists():
        save = _not_into_package(name, recipe, seed, recipe_for(name, recipe)[1].seed, say=True)
    path = Path(path) if path is not None else checkpoint_path(name, recipe)
    result = None
    if not path.exists():
        changes = {} if seed is None else {"seed": seed}
        interrupted = save and state_path_for(path).exists()  # a notebook cell stopped earlier: continue its run
        model, result = train(name, recipe, data=data, out=path if save else None, save=save, device=device,
                              progress=progress,
                              resume=interrupted, **changes)
        if result.stopped != "steps" or not save:
            return {"model": model, "checkpoint": None, "result": result, "trained": True, "source": None}
    model, ckpt = load_method(path, device, expect=name)
    held = ckpt.get("recipe_name") or ckpt.get("profile")
    if result is None and held is not None and held != recipe:  # as pretrained(): a file copied or renamed
        raise ValueError(f"{path} holds {name} trained with recipe {held!r}, not {recipe!r}; ask for recipe "
                         f"{held!r}, or retrain with `python -m fslcourse train {name} --recipe {recipe} --overwrite`")
    if result is None and seed is not None and ckpt.get("seed") != seed:
        raise ValueError(f"{path.name} was trained with seed {ckpt.get('seed')}, not the seed={seed} asked for; leave "
                         "seed out to load it, or give path= a new file to train that seed")
    return {"model": model, "checkpoint": ckpt, "result": result, "trained": result is not None,
            "source": file_source(path)}
