"""Ready classifiers from committed checkpoints: ``fslcourse.pretrained(name)``.

A checkpoint is a dict saved with :func:`fslcourse.io.atomic_torch_save` and
loaded with ``weights_only=True``. It records how to rebuild the method
(``config``), its weights, the seed, the recipe it was trained with (``recipe``,
``recipe_name``; ``profile`` is the same name), the steps done, the training time
(wall and CPU seconds), the training log, the package versions and the accuracy
measured when it was saved (``metrics``). Loading checks that the file holds the
method that was asked for. ``fslcourse.training`` writes these files.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .config import RECIPE_NAMES, get_device
from .io import atomic_torch_save, file_source, load_checkpoint
from .methods.base import FewShotClassifier, get_method
from .results import versions

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
CHECKPOINT_FORMAT = 2
# Which committed recipe answers "give me this method" when no recipe is named (``predict``, the drawing board):
# ProtoNet's lake recipe is the course's best one-shot classifier for Lake et al.'s task
# (benchmarks/oneshot_ablation.py, results/oneshot_ablation.json); every other method uses its quick recipe.
BEST_RECIPES = {"protonet": "lake"}


def default_recipe(name: str) -> str:
    """The recipe whose checkpoint stands for method ``name`` when none is named: :data:`BEST_RECIPES` or ``quick``."""
    return BEST_RECIPES.get(name, "quick")


def checkpoint_path(name: str, profile: str = "quick") -> Path:
    """Where the committed checkpoint of method ``name`` trained with recipe ``profile`` lives."""
    if profile not in RECIPE_NAMES:
        raise ValueError(f"recipe {profile!r} is not known; use one of {', '.join(RECIPE_NAMES)}")
    return CHECKPOINT_DIR / f"{name}-{profile}.pt"


def existing_checkpoint(name: str, profile: str = "quick") -> Path:
    """:func:`checkpoint_path`, checked to exist.

    Raises:
        FileNotFoundError: no such checkpoint, with the command that trains one.
    """
    path = checkpoint_path(name, profile)
    if not path.exists():
        try:
            cls = get_method(name)
        except ValueError:  # not a registered method: a generator family, the sinusoid regressors, or a typo
            cls = None
            if not any(CHECKPOINT_DIR.glob(f"{name}-*.pt")):
                raise ValueError(f"{name!r} names no checkpoint in the package (no {name}-*.pt in {CHECKPOINT_DIR}); "
                                 "give a registered method, a generator family or 'sinusoid'") from None
        if cls is not None and not cls.trainable:
            raise ValueError(f"method {name!r} has no weights, so it has no checkpoint; pretrained({name!r}) builds it")
        recipes = getattr(cls, "RECIPES", None)
        if recipes is not None and profile not in recipes:
            raise FileNotFoundError(f"{name!r} has no {profile!r} recipe, so no {path.name}; use one of "
                                    f"{', '.join(recipes)} (--profile)")
        raise FileNotFoundError(f"no {profile!r} checkpoint for {name!r} at {path}; "
                                f"create it with `python -m fslcourse train {name} --recipe {profile}`")
    return path


def save_method(model: FewShotClassifier, path: str | Path, *, seed: int, profile: str,
                train_seconds: float, metrics: dict | None = None, extra: dict | None = None,
                **record) -> Path:
    """Save ``model`` with everything needed to rebuild and audit it (atomic write).

    ``record`` adds top-level fields (``recipe``, ``steps``, ``cpu_seconds``, ``log``, ``device`` ...).
    """
    state = {
        "format": CHECKPOINT_FORMAT,
        "method": model.name,
        "config": model.config(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "seed": seed,
        "profile": profile,
        "train_seconds": float(train_seconds),
        "metrics": metrics or {},
        "versions": versions(),
        **record,
    }
    if extra:
        state["extra"] = extra
    return atomic_torch_save(state, path)


def training_summary(ckpt: dict) -> dict:
    """How a checkpoint was trained, for result records: ``steps``, ``cpu_seconds``, ``train_episodes``
    (the recipe's ``n_way``, ``n_shot``, ``n_query``, ``meta_batch``), ``selection`` (which weights were
    kept), ``width`` (the backbone's filters) and ``split`` (the protocol of the classes it was trained on,
    ``"alphabet"`` or ``"vinyals"``); ``None`` where the file does not record it."""
    recipe, metrics, config = ckpt.get("recipe") or {}, ckpt.get("metrics") or {}, ckpt.get("config") or {}
    shape = {k: recipe.get(k) for k in ("n_way", "n_shot", "n_query", "meta_batch")} if recipe else None
    best = metrics.get("best_step")
    selection = (f"best meta-validation accuracy (step {best})" if best is not None
                 else "the last step" if recipe else None)
    width = (config.get("backbone_kwargs") or {}).get("hidden", config.get("hidden"))
    return {"steps": ckpt.get("steps"), "cpu_seconds": ckpt.get("cpu_seconds"), "train_episodes": shape,
            "selection": selection, "width": width, "split": ckpt.get("split_protocol")}


def load_method(path: str | Path, device=None, expect: str | None = None,
                expect_recipe: str | None = None) -> tuple[FewShotClassifier, dict]:
    """Rebuild a method from a checkpoint file; returns ``(model, checkpoint)``.

    The model carries ``checkpoint_source``: the file's name and sha256 and :func:`training_summary`;
    :func:`fslcourse.evaluate.evaluate` copies it into its result, so every result record names the
    exact file it measured and how it was trained.

    Args:
        expect: the method name the file must hold (``None``: whatever it holds).
        expect_recipe: the recipe the file must have been trained with (``None``: any; a file that records none,
            from before checkpoints named their recipe, passes).

    Raises:
        ValueError: the file holds another method or recipe, a config the method does not take, or weights that
            do not fit its config; the message names the file and the fix.
    """
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or not {"method", "config", "state_dict"} <= set(ckpt):
        raise ValueError(f"{path} is not a method checkpoint (no method, config and state_dict); "
                         "retrain it with `python -m fslcourse train NAME --recipe RECIPE --overwrite` (a checkpoint is "
                         "NAME-RECIPE.pt)")
    if expect is not None and ckpt["method"] != expect:
        raise ValueError(f"{path} holds method {ckpt['method']!r}, not {expect!r}; retrain it with "
                         f"`python -m fslcourse train {expect} --recipe {ckpt.get('profile', 'quick')} --overwrite`")
    held = ckpt.get("recipe_name") or ckpt.get("profile")
    retrain = f"`python -m fslcourse train {ckpt['method']} --recipe {expect_recipe or held or 'quick'} --overwrite`"
    if expect_recipe is not None and held is not None and held != expect_recipe:  # a file copied or renamed
        raise ValueError(f"{path} holds {ckpt['method']} trained with recipe {held!r}, not {expect_recipe!r}; "
                         f"retrain it with {retrain}")
    cls = get_method(ckpt["method"])
    try:
        model = cls(**{k: v for k, v in ckpt["config"].items() if k not in cls.retired_config})
    except TypeError as err:  # a key this version's method does not take: a file from another version
        raise ValueError(f"{path}: its config {ckpt['config']} does not fit this version's {ckpt['method']} "
                         f"({err}); retrain it with {retrain}") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:  # name the first tensor that does not fit, not only torch's header line
        lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise ValueError(f"{path}: the weights do not fit {ckpt['method']}({ckpt['config']}): "
                         f"{detail[:200]}; retrain it with {retrain}") from None
    model.checkpoint_source = {**file_source(path), **training_summary(ckpt)}
    return model.to(get_device(device)).eval(), ckpt


def pretrained(name: str, profile: str = "quick", device=None) -> FewShotClassifier:
    """A ready classifier for method ``name``, built from its committed checkpoint.

    Methods without weights (``pixel``) need no checkpoint.

    Raises:
        ValueError: ``name`` is not a registered method.
        FileNotFoundError: no checkpoint for that profile, with the command that trains one.
    """
    cls = get_method(name)
    dev = get_device(device)
    if not cls.trainable:  # no weights, so no recipe either; a mistyped one is still refused, not ignored
        checkpoint_path(name, profile)
        return cls().to(dev).eval()
    path = existing_checkpoint(name, profile)
    return load_method(path, dev, expect=name, expect_recipe=profile)[0]


def checkpoint_info(name: str, profile: str = "quick") -> dict:
    """The checkpoint's record without the weights (config, seed, metrics, times)."""
    # existing_checkpoint: a missing file's message names the recipe that makes it
    ckpt = load_checkpoint(existing_checkpoint(name, profile), map_location=torch.device("cpu"))
    ckpt.pop("state_dict", None)
    return ckpt
