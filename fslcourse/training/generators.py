"""How the generators are trained, stored and built: the VAEs, the DAGAN, the hallucinator, the diffusion model.

Taught in ``notebooks/07``–``09``. Every generator is trained by the one loop
(:func:`~fslcourse.training.loop.fit`) with its recipe from its module's ``RECIPES``; its
``train_step`` is the model's own. Checkpoints: ``checkpoints/FAMILY-RECIPE.pt`` (a feature-space
generator is stored per backbone fingerprint), loaded, or trained when missing, by
``load_or_train(FAMILY, recipe, backbone=...)`` (:data:`LOADERS`). ``get_generator(name)``
builds a registered support generator from its checkpoint, training what is missing; inside
``with committed_only():`` (the benchmarks: they measure, never train) a missing part is an error instead.
"""
from __future__ import annotations

import contextlib
import contextvars
from pathlib import Path

import torch

from ..config import SEED_MAX, get_device
from ..data.episodes import EpisodeSampler
from ..evaluate import mean_ci95
from ..generative.augment import FeatureSplit, ModelGenerator, backbone_fingerprint, embed_split
from ..generative.classical import CONTROLS
from ..generative.deformation_vae import RECIPES as DEFORMATION_VAE
from ..generative.deformation_vae import DeformationVAE
from ..generative.deformation_vae import heldout_elbo as deformation_elbo
from ..generative.diffusion import RECIPES as DIFFUSION
from ..generative.diffusion import DiffusionGenerator, DiffusionTrainer, Schedule, heldout_loss
from ..generative.gan import DAGAN, LOSSES, DAGANGenerator, DeformingGenerator, PairCritic, quality, rotate_pairs
from ..generative.gan import RECIPES as GAN
from ..generative.gan import RECIPES_DEFORMING as DEFORMING_GAN
from ..generative.hallucinator import RECIPES as HALLUCINATOR
from ..generative.hallucinator import FeatureHallucinator
from ..generative.uresnet import DenseCritic, UResNetGenerator
from ..generative.vae import RECIPES as VAE
from ..generative.vae import ConditionalVAE, FeatureVAE, heldout_elbo
from ..io import atomic_torch_save, check_target, file_source, load_checkpoint, state_path_for
from ..models.unet import UNet
from ..pretrained import CHECKPOINT_DIR, RECIPE_NAMES
from ..recipe import Recipe
from ..results import versions
from .loop import Hook, TrainingStopped, fit
from .schedules import make_scheduler
from .trainers import make_optimizer

_COMMITTED_ONLY = contextvars.ContextVar("committed_only", default=False)


@contextlib.contextmanager
def committed_only():
    """Inside, a generator whose checkpoint lacks what is asked for raises instead of training and saving it."""
    token = _COMMITTED_ONLY.set(True)
    try:
        yield
    finally:
        _COMMITTED_ONLY.reset(token)


def _about_to_train(what: str | None, path: Path, family: str, profile: str) -> None:
    """Raise inside :func:`committed_only`: ``path`` lacks ``what`` (``None``: the file is missing), and this run
    may not train it."""
    if _COMMITTED_ONLY.get():
        exists = what is not None and path.exists()
        lacks = f"{path.name} has no {what}" if exists else f"{path.name} does not exist"
        if exists and "backbone" in what:  # training the family again makes entries for these backbones only
            raise ValueError(f"{lacks}: feature-space generators are trained for the quick ProtoNet and "
                             "fine-tuning backbones only, and this run only measures committed generators; "
                             "augment protonet or finetune with --profile quick, or use a pixel-space generator "
                             "(vae, vae-prior, deformation-vae, gan, deformation-gan, diffusion)")
        raise ValueError(f"{lacks}, and this run only measures committed generators; train it first with: "
                         f"python -m fslcourse train {family} --recipe {profile}" + (" --overwrite" if exists else ""))


def _draws_one_batch_a_step(recipe: Recipe, who: str, schedules: tuple[str, ...] | None = None) -> None:
    """Refuse recipe fields a generator's trainer does not use, so that a recipe never describes another run."""
    unused = [f"{k}={v!r}" for k, v, default in (("meta_batch", recipe.meta_batch, 1),
                                                  ("within_alphabet", recipe.within_alphabet, False)) if v != default]
    if schedules is not None and recipe.schedule not in schedules:
        unused.append(f"schedule={recipe.schedule!r}")
    if unused:
        rate = ", at a constant learning rate" if schedules == ("constant",) else ""
        raise ValueError(f"{who} draws one batch a step from any alphabet{rate}, so {', '.join(unused)} would "
                         "describe another run than the one trained; leave them at their defaults")


def checkpoint_file(family: str, recipe: str = "quick") -> Path:
    """``checkpoints/{family}-{recipe}.pt`` (``family``: one of :data:`FAMILIES`)."""
    if recipe not in RECIPE_NAMES:
        raise ValueError(f"recipe {recipe!r} is not known; use one of {', '.join(RECIPE_NAMES)}")
    return CHECKPOINT_DIR / f"{family}-{recipe}.pt"


def family_of(ckpt: dict) -> str:
    """Which generator family (or method) a loaded checkpoint holds: its ``family`` entry, else its layout."""
    if "family" in ckpt:
        return ckpt["family"]
    if "method" in ckpt:
        return f"method {ckpt['method']!r}"
    if "schedule" in ckpt and "backbone_fingerprint" in ckpt:
        return "diffusion"
    if isinstance(ckpt.get("pixel"), dict):
        return "vae" if "state_dict" in ckpt["pixel"] else "gan"
    trainer = ckpt["recipe"].get("trainer") if isinstance(ckpt.get("recipe"), dict) else None
    if "state_dict" in ckpt and trainer in ("vae", "gan"):
        return f"deformation-{trainer}"  # one model at the top level: the deformation VAE or the deforming DAGAN
    return "unknown"


def load_family(path: Path, family: str) -> dict:
    """Load a generator checkpoint, refusing (one line) a file that holds another family or a method."""
    ckpt = load_checkpoint(path)
    found = family_of(ckpt)
    if found != family:
        what = "an unrecognised" if found == "unknown" else f"a {found}"
        raise ValueError(f"{path} holds {what} checkpoint, not a {family} one; pass a {family} checkpoint "
                         f"(python -m fslcourse train {family} writes one) or another path")
    return ckpt


class SeenClasses(Hook):
    """Records every class id a generator trained on (the record shows the meta-test split was never read)."""

    def __init__(self, n_classes: int):
        self.seen = torch.zeros(n_classes, dtype=torch.bool)

    def add(self, ids: torch.Tensor) -> None:
        self.seen[ids.cpu()] = True

    def ids(self) -> list[int]:
        return torch.nonzero(self.seen).flatten().tolist()  # (n_seen,) ids

    def state_dict(self) -> dict:
        return {"seen": self.seen.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.seen = state["seen"].clone()


def _history(result, split, seen: SeenClasses | None = None, state=None) -> dict:
    """The run's log as a flat dict plus ``steps``, ``split``, ``total_seconds`` and the classes seen.

    Raises:
        TrainingStopped: the run did not finish its steps, so its model must not be stored as finished.
    """
    if result.stopped != "steps":
        kept = (f"; its training state of step {result.state_step} is kept in {state}: continue with --resume"
                if state is not None and result.state_step is not None else "")
        raise TrainingStopped(f"training stopped at step {result.steps} "
                              f"({result.stopped}); no generator checkpoint was written{kept}")
    return {**result.log.as_dict(), "steps": result.steps, "split": split.name, "total_seconds": result.seconds,
            "cpu_seconds_total": result.cpu_seconds, **({"seen_classes": seen.ids()} if seen is not None else {})}


# ---- VAE ------------------------------------------------------------------------------------------------
def train_vae(model, train_split, recipe: Recipe, *, featurise=None, val_split=None, progress: bool = True,
              state_path=None) -> dict:
    """Maximise the ELBO on ``train_split`` (meta-train classes only); ``val_split`` is only scored.

    ``model`` is a conditional VAE of :mod:`~fslcourse.generative.vae` or a
    :class:`~fslcourse.generative.deformation_vae.DeformationVAE` (its ``train_step`` reads the episode).

    Returns:
        The history: the log (``loss``, ``recon``, ``kl``, ``elbo``, ``val_elbo``), ``steps``, ``split``,
        ``seen_classes``; the model is left in eval mode (a conditional VAE with its within-class spread estimated).
    """
    _draws_one_batch_a_step(recipe, "the VAE's trainer")
    featurise = featurise or (lambda x: x)
    device = next(model.parameters()).device
    sampler = EpisodeSampler(train_split, recipe.n_way, recipe.n_shot, recipe.n_query, seed=recipe.seed)
    g, seen = torch.Generator().manual_seed(recipe.seed), SeenClasses(train_split.n_classes)

    def batches():
        ep = sampler.sample().to(device)
        seen.add(ep.classes)
        return {"episode": ep, "k": int(torch.randint(1, recipe.n_shot + 1, (1,), generator=g)),
                "featurise": featurise, "generator": g}

    validate = None
    if val_split is not None and recipe.val_every:
        val_batch = _val_episode(val_split, recipe, seed=0)

        def validate(m):
            elbo = _heldout_elbo(m, val_batch, featurise)["elbo"]
            return {"score": elbo, "elbo": elbo}
    optimizer = make_optimizer(model.parameters(), recipe)
    result = fit(model, batches, recipe, optimizer=optimizer, scheduler=make_scheduler(optimizer, recipe),
                 validate=validate, hook=seen, streams={"episodes": sampler.generator, "noise": g},
                 state_path=state_path, keep_best=recipe.options.get("keep", "best") == "best", label="VAE",
                 progress=progress)
    model.eval()
    if not isinstance(model, DeformationVAE):  # a conditional VAE: estimate its within-class spread
        ep = EpisodeSampler(train_split, min(64, train_split.n_classes), recipe.n_shot, 1, seed=recipe.seed + 1).sample()
        model.estimate_spread(featurise(ep.support_x.to(device)), ep.support_y.to(device), ep.n_way)
    return _history(result, train_split, seen)


def _val_episode(val_split, recipe: Recipe, seed: int):
    """The recipe's seeded meta-validation episode (at most ``val_split``'s classes)."""
    n_way = min(recipe.val_n_way, val_split.n_classes)
    return EpisodeSampler(val_split, n_way, recipe.val_n_shot, recipe.val_n_query, seed=seed).sample()


def _heldout_elbo(model, episode, featurise=None) -> dict:
    """``heldout_elbo`` of a conditional VAE, or of the deformation VAE (which reads pixels: no ``featurise``)."""
    return deformation_elbo(model, episode) if isinstance(model, DeformationVAE) else heldout_elbo(model, episode,
                                                                                                   featurise)


def _val_features(backbone, data, seed: int) -> FeatureSplit:
    """The backbone's features of 64 seeded meta-validation characters: ``(64, n_examples, D)``."""
    ids = torch.randperm(data.val.n_classes, generator=torch.Generator().manual_seed(seed))[:64]
    return FeatureSplit("val", embed_split(backbone, data.val, ids))


def _elbo_metrics(model, val_split, recipe: Recipe) -> dict:
    """The metrics a VAE's checkpoint stores: its ELBO per example (:func:`heldout_elbo`: nats for the pixel VAE,
    up to constants for a feature VAE) on a seeded meta-validation episode.

    The episode (seed 1) is not the one the run's validation chose the kept step on (seed 0).
    """
    episode = _val_episode(val_split, recipe, seed=1)
    elbo = _heldout_elbo(model, episode.to(next(model.parameters()).device))
    return {"val_elbo": elbo["elbo"], "val_recon": elbo["recon"], "val_kl": elbo["kl"],
            "protocol": {"split": val_split.name, "n_way": episode.n_way, "n_shot": recipe.val_n_shot,
                         "n_query": recipe.val_n_query, "seed": 1}}


def _entry(model, hist, recipe: Recipe, **extra) -> dict:
    return {"config": model.config(), "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "seed": recipe.seed, "train_seconds": hist["total_seconds"], "history": hist, "recipe": recipe.as_dict(),
            **extra}


def _model(cls, entry: dict, device=None):
    """The model a stored entry holds: ``cls(**entry["config"])`` with its weights, on ``device`` (``None``: the
    CPU, left in its mode), else in eval mode."""
    model = cls(**entry["config"])
    model.load_state_dict(entry["state_dict"])
    return model if device is None else model.to(device).eval()


def _feature_model(cls, backbone, data, recipe: Recipe):
    """A feature-space model to train for ``backbone`` (a feature VAE, a hallucinator), seeded by ``recipe``.

    Returns:
        ``(model, FeatureSplit of the backbone's features of at most options["max_classes"] seeded meta-train
        characters (n_classes, 20, D), their class ids in data.train)``; the model's ``scale`` is their RMS.
    """
    n_train = data.train.n_classes
    ids = torch.randperm(n_train, generator=torch.Generator().manual_seed(recipe.seed))[
        :recipe.options.get("max_classes", n_train)]
    feats = embed_split(backbone, data.train, ids)  # (n_classes, 20, D)
    torch.manual_seed(recipe.seed)
    model = cls(feature_dim=feats.shape[-1], **recipe.model).to(feats.device)
    model.scale.fill_(feats.pow(2).mean().sqrt().item())
    return model, FeatureSplit(data.train.name, feats), ids


def _stored(ckpt: dict, path: Path, trained, save: bool) -> dict | None:
    """Write ``ckpt``, with the package versions, to ``path`` if something was ``trained`` and ``save``; returns
    the file's name and sha256 (``None``: no file)."""
    if trained and save:
        ckpt["versions"] = versions()
        atomic_torch_save(ckpt, path)
    return file_source(path) if path.exists() else None


def _load_vae(data, profile: str = "quick", *, backbone=None, seed: int = 0, device=None, progress: bool = True,
              path: str | Path | None = None, save: bool = True, changes: dict | None = None) -> dict:
    """The pixel VAE (and, given a backbone, its feature VAE) from the checkpoint, training what is missing.

    Only ``data.train`` is trained on (``data.val`` is scored; ``data.test`` is never read). ``changes``:
    ``{"pixel": {field: value}, "feature": {...}}`` changes to ``vae.RECIPES[profile]``.

    Returns:
        ``{"pixel", "feature" (or None), "checkpoint", "trained": [names], "fingerprint",
        "source"}`` (``source``: the file's name and sha256, ``None`` when nothing was saved).
    """
    device = get_device(device)
    path = Path(path) if path is not None else checkpoint_file("vae", profile)
    ckpt = load_family(path, "vae") if path.exists() else {"format": 1, "family": "vae", "profile": profile}
    changes, trained, fp = changes or {}, [], None
    if "pixel" not in ckpt:
        _about_to_train("pixel VAE", path, "vae", profile)
        r = VAE[profile]["pixel"].replace(seed=seed, **changes.get("pixel", {}))
        torch.manual_seed(r.seed)
        model = ConditionalVAE(**r.model).to(device)
        hist = train_vae(model, data.train, r, val_split=data.val, progress=progress)
        ckpt["pixel"] = _entry(model, hist, r, metrics=_elbo_metrics(model, data.val, r))
        trained.append("pixel")
    pixel, feature = _model(ConditionalVAE, ckpt["pixel"], device), None
    if backbone is not None:
        fp = backbone_fingerprint(backbone)
        features = ckpt.setdefault("feature", {})  # one feature VAE per backbone fingerprint
        if fp not in features:
            _about_to_train(f"feature VAE for backbone {fp}", path, "vae", profile)
            r = VAE[profile]["feature"].replace(seed=seed, **changes.get("feature", {}))
            model, split, ids = _feature_model(FeatureVAE, backbone, data, r)
            val = _val_features(backbone, data, r.seed)
            hist = train_vae(model, split, r, val_split=val, progress=progress)
            hist["seen_classes"] = ids[hist["seen_classes"]].tolist()  # back to class ids of data.train
            features[fp] = _entry(model, hist, r, backbone_fingerprint=fp, metrics=_elbo_metrics(model, val, r))
            trained.append("feature")
        feature = _model(FeatureVAE, features[fp], device)
    return {"pixel": pixel, "feature": feature, "checkpoint": ckpt, "trained": trained, "fingerprint": fp,
            "source": _stored(ckpt, path, trained, save)}


def _single(path, family: str, profile: str, build, train, device, save: bool, check=lambda ckpt: None) -> dict:
    """A checkpoint holding one model: loaded if ``path`` (``None``: ``checkpoint_file(family, profile)``) exists
    (``check(checkpoint)`` may refuse it), else ``train() -> checkpoint`` (saved, with the package versions, if
    ``save``); ``build(**config)`` makes the empty model. Returns ``{"model", "checkpoint", "trained", "source"}``."""
    path = Path(path) if path is not None else checkpoint_file(family, profile)
    trained = not path.exists()
    if trained:
        _about_to_train(None, path, family, profile)
    ckpt = {"family": family, **train()} if trained else load_family(path, family)
    check(ckpt)
    source = _stored(ckpt, path, trained, save)
    return {"model": _model(build, ckpt, device), "checkpoint": ckpt, "trained": trained, "source": source}


def _load_deformation_vae(data, profile: str = "quick", *, backbone=None, seed: int = 0, device=None,
                          progress: bool = True, path: str | Path | None = None, save: bool = True) -> dict:
    """The deformation VAE from its checkpoint, else trained on ``data.train`` only (``data.val`` is scored;
    it draws in pixels, so ``backbone`` is not used).

    Returns:
        ``{"model": DeformationVAE (eval), "checkpoint", "trained": bool, "source"}``.
    """
    device = get_device(device)

    def train():
        r = DEFORMATION_VAE[profile].replace(seed=seed)
        torch.manual_seed(r.seed)
        model = DeformationVAE(**r.model).to(device)
        hist = train_vae(model, data.train, r, val_split=data.val, progress=progress)
        return {"format": 1, "profile": profile, **_entry(model, hist, r, metrics=_elbo_metrics(model, data.val, r))}
    return _single(path, "deformation-vae", profile, DeformationVAE, train, device, save)


# ---- DAGAN and the hallucinator ---------------------------------------------------------------------------
class GANDiverged(RuntimeError):
    """Training stopped because a loss became NaN/inf or diverged; ``last_good_step``'s state was kept on disk."""

    def __init__(self, message: str, step: int, last_good_step: int | None):
        super().__init__(message)
        self.step, self.last_good_step = step, last_good_step


class DivergenceGuard(Hook):
    """Stops a GAN run when a loss is NaN/inf or its magnitude exceeds ``recipe.options["divergence"]``."""

    def __init__(self, recipe: Recipe, state_path):
        self.recipe, self.state_path, self.saved = recipe, state_path, None

    def state_on_disk(self, step: int) -> None:
        self.saved = step  # the step the message names: the state fit wrote or resumed from, not a guess

    def _stop(self, what: str, step: int, advice: str) -> None:
        r = self.recipe
        kept = (f"the last training state (step {self.saved}) is kept in {self.state_path}"
                if self.saved is not None else "no training state was written")
        raise GANDiverged(f"{what} ({r.options['loss']} loss, lr={r.lr}): training stopped; {kept}. {advice}",
                          step, self.saved)

    def after_step(self, model, step: int, stats: dict) -> None:
        r = self.recipe
        fix = "use loss='wgan-gp', " if r.options["loss"] != "wgan-gp" else ""
        for name, label in (("loss_d", "critic loss"), ("loss_g", "generator loss")):
            value = stats[name]
            if not abs(value) < r.options.get("divergence", 1e4):  # False for NaN and inf too
                self._stop(f"{label} = {value} at step {step}", step,
                           f"Lower lr, {fix}or use a spectral-normalised critic (spectral=True)")
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            self._stop(f"a weight is NaN/inf after step {step}", step,
                       "Lower lr or use a spectral-normalised critic (spectral=True)")


PAIR_GENERATORS = {"course": DAGANGenerator, "deformation": DeformingGenerator, "uresnet": UResNetGenerator}
PAIR_CRITICS = {"pair": PairCritic, "dense": DenseCritic}


def make_dagan(recipe: Recipe) -> DAGAN:
    """The two players a DAGAN recipe names, built with ``recipe.model["generator"]`` and ``["critic"]``.

    ``recipe.options["generator"]``: ``"course"`` (:class:`~fslcourse.generative.gan.DAGANGenerator`, the
    default), ``"deformation"`` or ``"uresnet"`` (the paper's); ``options["critic"]``: ``"pair"`` (the default)
    or ``"dense"`` (the paper's).
    """
    o, m = recipe.options, recipe.model
    for key, table, default in (("generator", PAIR_GENERATORS, "course"), ("critic", PAIR_CRITICS, "pair")):
        if o.get(key, default) not in table:
            raise ValueError(f"recipe option {key}={o[key]!r} is not a DAGAN {key}; use one of {', '.join(table)}")
    return DAGAN(PAIR_GENERATORS[o.get("generator", "course")](**m.get("generator", {})),
                 PAIR_CRITICS[o.get("critic", "pair")](**m.get("critic", {})))


def pair_generator(entry: dict):
    """The generator of a stored DAGAN entry (its recipe names the architecture), with its weights, on the CPU."""
    return _model(PAIR_GENERATORS[entry["recipe"]["options"].get("generator", "course")], entry)


def train_gan(gan: DAGAN, train_split, recipe: Recipe, *, backbone=None, val_split=None, state_path=None,
              resume: bool = False, hook: Hook | None = None, progress: bool = True) -> dict:
    """Train a DAGAN on pairs of drawings of meta-train characters, refusing to train on through a NaN.

    Every ``recipe.val_every`` steps :func:`~fslcourse.generative.gan.quality` on ``val_split`` (given a
    ``backbone``) is logged. ``hook`` runs before the guard (tests inject a NaN with it), so a step whose
    weights went NaN is never written to the training state. ``resume`` continues the run saved in ``state_path``.

    Raises:
        GANDiverged: a loss is NaN/inf or diverges; the message names the step and the kept state.
    """
    from .loop import Hooks

    _draws_one_batch_a_step(recipe, "the DAGAN's trainer", schedules=("constant",))  # two optimisers, no scheduler
    dev = next(gan.parameters()).device
    sampler = EpisodeSampler(train_split, recipe.n_way, 1, 1, seed=recipe.seed)
    g = torch.Generator().manual_seed(recipe.seed)
    opts = recipe.options

    def episode():
        ep = sampler.sample().to(dev)
        if opts.get("rotate"):  # both drawings of a pair turned alike (the paper's augmentation)
            ep.support_x, ep.query_x = rotate_pairs(ep.support_x, ep.query_x, g)
        return ep

    def batches():
        return {"episodes": [episode() for _ in range(opts["n_critic"])], "generator": g,
                "loss": opts["loss"], "gp_weight": opts.get("gp_weight", 10.0), "mismatch": opts.get("mismatch", False)}

    if opts.get("keep") == "best" and recipe.val_every and (backbone is None or val_split is None):
        raise ValueError(f"this gan recipe (keep='best', val_every={recipe.val_every}) keeps its best validation "
                         "step, which needs backbone= (the quick ProtoNet's: faithfulness is measured in its space) "
                         "and val_split=; pass both to train_gan or load_or_train('gan', backbone=...), or train "
                         "the checkpoint with `python -m fslcourse train gan --recipe NAME`")
    validate = None
    if backbone is not None and val_split is not None and recipe.val_every:
        def validate(m):
            q = quality(m.generator.eval(), backbone, val_split, n_classes=recipe.val_n_way, seed=recipe.seed)
            return {"score": q["faithful"], **q}
    optimizer = {"generator": make_optimizer(gan.generator.parameters(), recipe),
                 "critic": make_optimizer(gan.critic.parameters(), recipe)}
    keep_best = validate is not None and opts.get("keep") == "best"  # else the last step's generator
    result = fit(gan, batches, recipe, optimizer=optimizer, validate=validate,
                 hook=Hooks(hook, DivergenceGuard(recipe, state_path)), streams={"episodes": sampler.generator,
                                                                                 "noise": g},
                 state_path=state_path, resume=resume, keep_best=keep_best, label=f"DAGAN ({opts['loss']})",
                 progress=progress)
    gan.eval()
    return {**_history(result, train_split, state=state_path),
            "kept_step": result.best_step if keep_best else result.steps}


def _load_deformation_gan(data, profile: str = "quick", *, backbone=None, seed: int = 0, device=None,
                          progress: bool = True, path: str | Path | None = None, save: bool = True) -> dict:
    """The DAGAN with a deforming generator from its checkpoint, else trained on ``data.train`` (WGAN-GP,
    ``gan.RECIPES_DEFORMING``). Given a ``backbone``, its validation faithfulness is logged and its quality measured.

    Returns:
        ``{"model": DeformingGenerator (eval), "checkpoint", "trained": bool, "source"}``.
    """
    device = get_device(device)

    def train():
        r = DEFORMING_GAN[profile].replace(seed=seed)
        torch.manual_seed(r.seed)
        gan = make_dagan(r).to(device)
        hist = train_gan(gan, data.train, r, backbone=backbone, val_split=data.val, progress=progress)
        metrics = quality(gan.generator, backbone, data.test, seed=r.seed) if backbone is not None else {}
        return {"format": 1, "profile": profile, **_entry(gan.generator, hist, r), "critic_config": gan.critic.config(),
                "metrics": metrics}
    return _single(path, "deformation-gan", profile, DeformingGenerator, train, device, save)


def train_hallucinator(model: FeatureHallucinator, feature_split, recipe: Recipe, progress: bool = True) -> dict:
    """Meta-train the hallucinator on episodes of meta-train backbone features (the few-shot loss)."""
    _draws_one_batch_a_step(recipe, "the hallucinator's trainer")
    sampler = EpisodeSampler(feature_split, recipe.n_way, recipe.n_shot, recipe.n_query, seed=recipe.seed)
    g = torch.Generator().manual_seed(recipe.seed)
    m = recipe.options["n_generated"]
    optimizer = make_optimizer(model.parameters(), recipe)
    result = fit(model, lambda: {"episode": sampler.sample(), "generator": g, "n_generated": m}, recipe,
                 optimizer=optimizer, scheduler=make_scheduler(optimizer, recipe),
                 streams={"episodes": sampler.generator, "noise": g}, label="hallucinator", progress=progress)
    return _history(result, feature_split)


def hallucinator_metrics(model: FeatureHallucinator, val_split, recipe: Recipe) -> dict:
    """The metrics a hallucinator's checkpoint stores: meta-validation query accuracy with and without it.

    ``recipe.val_episodes`` seeded episodes (seed 1) of ``val_split``'s features, ``recipe.val_n_way``-way
    ``recipe.val_n_shot``-shot, ``options["n_generated"]`` hallucinated features per class; the paired
    difference (with minus without) with its 95% interval.
    """
    n_way, m = min(recipe.val_n_way, val_split.n_classes), recipe.options["n_generated"]
    sampler = EpisodeSampler(val_split, n_way, recipe.val_n_shot, recipe.val_n_query, seed=1)
    g = torch.Generator().manual_seed(1)
    pairs = [model.query_accuracy(sampler.sample(), m, g) for _ in range(recipe.val_episodes)]
    (acc, ci), (real, real_ci) = (mean_ci95([p[k] for p in pairs]) for k in (0, 1))
    diff, diff_ci = mean_ci95([a - b for a, b in pairs])
    return {"val_accuracy": acc, "val_ci95": ci, "val_accuracy_real": real, "val_ci95_real": real_ci,
            "val_gain": diff, "val_gain_ci95": diff_ci,
            "protocol": {"split": val_split.name, "n_way": n_way, "n_shot": recipe.val_n_shot,
                         "n_query": recipe.val_n_query, "n_episodes": recipe.val_episodes, "n_generated": m, "seed": 1}}


def dagan_recipe(profile: str, loss: str, seed: int = 0) -> Recipe:
    """The recipe one pixel DAGAN of the ``gan`` family's ``profile`` trains with ``loss`` (the run that writes
    ``gan-PROFILE-LOSS.state.pt``): the family's recipe with that loss, and the standard loss kept at its last step."""
    r = GAN[profile].replace(seed=seed, options={"loss": loss})
    if loss == "standard":  # kept at its last step: notebook 08 shows where this loss ends up
        r = r.replace(optimizer_kwargs={"betas": (0.5, 0.999)}, options={"keep": "last"})
    return r


def _load_gan(data, profile: str = "quick", *, backbone=None, seed: int = 0, device=None, progress: bool = True,
              path: str | Path | None = None, save: bool = True, state: str | Path | None = None,
              resume: bool = False) -> dict:
    """The pixel DAGANs (``"wgan-gp"``, ``"standard"``) and, given a backbone, its hallucinator; trains what is missing.

    The recipe's ``options["losses"]`` says which pixel DAGANs it has (the paper's: WGAN-GP only). Given
    ``state`` (``NAME.state.pt``), each DAGAN's run writes its resumable state beside it (``NAME-LOSS.state.pt``),
    and ``resume`` continues it.

    Returns:
        ``{"wgan-gp", "standard", "feature" (or None), "checkpoint", "trained", "fingerprint", "source"}``.
    """
    device = get_device(device)
    path = Path(path) if path is not None else checkpoint_file("gan", profile)
    ckpt = load_family(path, "gan") if path.exists() else {"format": 1, "family": "gan", "profile": profile,
                                                             "pixel": {}}
    out, trained = {"feature": None, "fingerprint": None}, []
    for loss in GAN[profile].options.get("losses", LOSSES):
        if loss not in ckpt["pixel"]:
            _about_to_train(f"{loss} DAGAN", path, "gan", profile)
            r = dagan_recipe(profile, loss, seed)
            torch.manual_seed(r.seed)
            gan = make_dagan(r).to(device)
            st = None if state is None else Path(state).with_name(Path(state).name.replace(".state", f"-{loss}.state"))
            hist = train_gan(gan, data.train, r, backbone=backbone, val_split=data.val, progress=progress,
                             state_path=st, resume=resume)
            metrics = quality(gan.generator, backbone, data.test, seed=r.seed) if backbone is not None else {}
            ckpt["pixel"][loss] = {**_entry(gan.generator, hist, r), "critic_config": gan.critic.config(), "loss": loss,
                                   "metrics": metrics,
                                   "metrics_backbone": backbone_fingerprint(backbone) if backbone is not None else None}
            trained.append(loss)
        out[loss] = pair_generator(ckpt["pixel"][loss]).to(device).eval()
    if backbone is not None:
        fp = out["fingerprint"] = backbone_fingerprint(backbone)
        features = ckpt.setdefault("feature", {})
        if fp not in features:
            _about_to_train(f"hallucinator for backbone {fp}", path, "gan", profile)
            r = HALLUCINATOR[profile].replace(seed=seed)
            model, split, _ = _feature_model(FeatureHallucinator, backbone, data, r)
            hist = train_hallucinator(model, split, r, progress=progress)
            val = _val_features(backbone, data, r.seed)
            features[fp] = _entry(model, hist, r, metrics=hallucinator_metrics(model, val, r))
            trained.append("feature")
        out["feature"] = _model(FeatureHallucinator, features[fp], device)
    return {**out, "checkpoint": ckpt, "trained": trained, "source": _stored(ckpt, path, trained, save)}


# ---- diffusion ---------------------------------------------------------------------------------------------
def train_diffusion(model, backbone, split, schedule: Schedule, recipe: Recipe, *, val_split=None,
                    progress: bool = True, state_path=None):
    """Train ε_θ on ``split`` (meta-train) with ``recipe``; returns ``(ema_model, history)``."""
    _draws_one_batch_a_step(recipe, "the diffusion trainer")
    device = next(model.parameters()).device
    o = recipe.options
    trainer = DiffusionTrainer(model, backbone, schedule, o["p_uncond"], o["ema"])
    g, seen = torch.Generator().manual_seed(recipe.seed), SeenClasses(split.n_classes)

    def batches():
        ids = torch.randperm(split.n_classes, generator=g)[:recipe.n_way]
        seen.add(ids)
        k = int(torch.randint(1, recipe.n_shot + 1, (1,), generator=g))
        ex = torch.stack([torch.randperm(split.n_examples, generator=g) for _ in ids])  # (n_way, n_examples)
        return {"x": split.get(ids, ex[:, : k + recipe.n_query]).to(device), "k": k, "generator": g}

    validate = None
    if val_split is not None and recipe.val_every:
        def validate(t):
            loss = heldout_loss(t.ema, backbone, val_split, schedule, seed=recipe.seed)["loss"]
            return {"score": -loss, "loss": loss}
    optimizer = make_optimizer(model.parameters(), recipe)
    result = fit(trainer, batches, recipe, optimizer=optimizer, scheduler=make_scheduler(optimizer, recipe),
                 validate=validate, hook=seen, streams={"batches": g}, state_path=state_path, keep_best=False,
                 label="diffusion", progress=progress)
    return trainer.ema, _history(result, split, seen)


def _load_diffusion(data, profile: str = "quick", *, backbone=None, seed: int = 0, device=None, progress: bool = True,
                    path: str | Path | None = None, save: bool = True, changes: dict | None = None) -> dict:
    """The model from the checkpoint if it exists for this conditioning backbone, else trained on ``data.train`` only.

    Args:
        backbone: the conditioning backbone (the ProtoNet backbone, frozen); its fingerprint is checked.
        changes: changes to ``diffusion.RECIPES[profile]`` (recipe fields).

    Returns:
        ``{"model": UNet (eval), "schedule": Schedule, "checkpoint": dict, "trained": bool, "source"}``.
    """
    if backbone is None:
        raise ValueError("the diffusion model is conditioned on a backbone's prototypes; pass backbone= (the "
                         "committed ProtoNet's: pretrained('protonet').backbone)")
    device = get_device(device)
    path = Path(path) if path is not None else checkpoint_file("diffusion", profile)
    backbone = backbone.to(device).eval()
    fp = backbone_fingerprint(backbone)

    def check(ckpt):
        if ckpt["backbone_fingerprint"] != fp:
            raise ValueError(f"{path.name} was trained with conditioning backbone {ckpt['backbone_fingerprint']}, "
                             f"but this backbone is {fp}; pass the ProtoNet backbone it was trained with, or delete "
                             f"{path.name} to retrain it")

    def train():
        r = DIFFUSION[profile].replace(seed=seed, **(changes or {}))
        torch.manual_seed(r.seed)
        schedule = Schedule(r.options["noise_schedule"], r.options["T"], device)
        model = UNet(cond_dim=backbone(torch.zeros(1, 1, 28, 28, device=device)).shape[1], **r.model).to(device)
        model, hist = train_diffusion(model, backbone, data.train, schedule, r, val_split=data.val, progress=progress)
        return {"format": 1, "profile": profile, **_entry(model, hist, r), "schedule": schedule.kind, "T": schedule.T,
                "backbone_fingerprint": fp, "device": str(device),
                "metrics": heldout_loss(model, backbone, data.val, schedule, seed=r.seed)}
    out = _single(path, "diffusion", profile, UNet, train, device, save, check)
    return {**out, "schedule": Schedule(out["checkpoint"]["schedule"], out["checkpoint"]["T"], device)}


BACKBONE_RECIPE = "quick"  # generators are trained for, and conditioned on, these checkpoints' backbones


# ---- the registry of support generators -----------------------------------------------------------------------
def _stored_model(load, key: str, options: dict | None = None, feature: tuple[str, str] | None = None):
    """The builder of a generator that is ``load``'s model ``key`` (``options``: its ``generate``'s, a VAE's mode).

    A pixel-space one (``backbone`` is not used): the pixel VAE, the deformation VAE, the WGAN-GP DAGAN, the
    DAGAN whose generator deforms the source drawing. ``feature``: ``(its name, the pixel generator to use
    instead)`` of a feature-space one, trained for ``backbone`` (the feature VAE, the hallucinator).
    """
    def build(data, *, backbone=None, profile: str = "quick", device=None, seed: int = 0, progress: bool = False):
        if feature and backbone is None:
            raise ValueError(f"the {feature[0]!r} generator needs the method's backbone; use a method with .backbone "
                             f"(protonet, finetune) or the pixel generator {feature[1]!r}")
        out = load(data, profile, backbone=backbone if feature else None, seed=seed, device=device, progress=progress)
        return ModelGenerator(out[key], space="feature" if feature else "pixel",
                              backbone_fingerprint=out.get("fingerprint"), options=options or {}, source=out["source"])
    return build


def _diffusion(data, *, backbone=None, profile: str = "quick", device=None, seed: int = 0, progress: bool = False,
               **options) -> DiffusionGenerator:
    """DDIM samples conditioned on the prototypes of the backbone ``train diffusion`` used: the quick ProtoNet's,
    whatever ``profile`` (it picks the diffusion checkpoint) and ``backbone`` (the classifier's; not used) are."""
    from ..pretrained import pretrained

    backbone = pretrained("protonet", profile=BACKBONE_RECIPE, device=device).backbone
    out = _load_diffusion(data, profile, backbone=backbone, seed=seed, device=device, progress=progress)
    return DiffusionGenerator(out["model"], out["schedule"], backbone, source=out["source"], **options)


# each generator: its builder, and the family whose checkpoint (FAMILY-RECIPE.pt) holds its model
GENERATOR_TABLE = {"vae": (_stored_model(_load_vae, "pixel", {"mode": "prototype"}), "vae"),
                   "vae-prior": (_stored_model(_load_vae, "pixel", {"mode": "prior"}), "vae"),
                   "vae-feature": (_stored_model(_load_vae, "feature", {"mode": "prior"}, ("vae-feature", "vae")), "vae"),
                   "deformation-vae": (_stored_model(_load_deformation_vae, "model"), "deformation-vae"),
                   "gan": (_stored_model(_load_gan, "wgan-gp"), "gan"),
                   "deformation-gan": (_stored_model(_load_deformation_gan, "model"), "deformation-gan"),
                   "hallucinator": (_stored_model(_load_gan, "feature", feature=("hallucinator", "gan")), "gan"),
                   "diffusion": (_diffusion, "diffusion")}
GENERATORS = {name: build for name, (build, _) in GENERATOR_TABLE.items()}
CHECKPOINT_FAMILY = {name: family for name, (_, family) in GENERATOR_TABLE.items()}


def get_generator(name: str):
    """The builder ``(data, *, backbone, profile, device, seed, progress) -> generator`` registered as ``name``."""
    if name not in GENERATORS:
        raise ValueError(f"generator {name!r} is not registered; known generators: {', '.join(sorted(GENERATORS))}")
    return GENERATORS[name]


# ---- python -m fslcourse train vae|gan|diffusion --recipe R ---------------------------------------------------
# each generator family: its loader (load_or_train(FAMILY, ...) and train(FAMILY, ...) call it) and the recipes
# its checkpoint can be trained with
FAMILY_TABLE = {"vae": (_load_vae, VAE), "deformation-vae": (_load_deformation_vae, DEFORMATION_VAE),
                "gan": (_load_gan, GAN), "deformation-gan": (_load_deformation_gan, DEFORMING_GAN),
                "diffusion": (_load_diffusion, DIFFUSION)}
LOADERS = {family: load for family, (load, _) in FAMILY_TABLE.items()}
FAMILY_RECIPES = {family: recipes for family, (_, recipes) in FAMILY_TABLE.items()}
FAMILIES = tuple(FAMILY_TABLE)


def check_family_recipe(family: str, recipe: str) -> None:
    """Refuse, in one line, a name that is not a generator family or a recipe its checkpoint is not trained with."""
    if family not in FAMILIES:
        raise ValueError(f"{family!r} is not a generator family; use one of {', '.join(FAMILIES)}")
    if recipe not in FAMILY_RECIPES[family]:
        raise ValueError(f"{family} has no recipe {recipe!r}; use one of {', '.join(FAMILY_RECIPES[family])}")


def train_generator(family: str, recipe: str = "quick", *, data=None, out: str | Path | None = None,
                    overwrite: bool = False, seed: int = 0, device=None, progress: bool = True,
                    resume: bool = False) -> Path:
    """Train a generator family's checkpoint from scratch with its recipe and write it to ``out``.

    ``vae``: the pixel VAE and a feature VAE for each committed backbone (ProtoNet, fine-tuning baseline);
    ``deformation-vae``: the deformation VAE (pixels; no backbone); ``deformation-gan``: the DAGAN with a
    deforming generator (faithfulness logged in the ProtoNet backbone's space);
    ``gan``: the WGAN-GP and standard-loss DAGANs (quality measured in the ProtoNet backbone's space) and a
    hallucinator for each committed backbone; ``diffusion``: conditioned on the committed ProtoNet backbone.

    ``gan`` runs are resumable: each DAGAN writes its training state beside ``out`` (``gan-RECIPE-LOSS.state.pt``,
    removed once ``out`` is written), and ``resume`` continues it; the other families train in one sitting.
    """
    import tempfile

    from ..pretrained import pretrained

    check_family_recipe(family, recipe)
    if resume and family != "gan":
        raise ValueError(f"--resume is for the gan family; {family} trains its recipe in one sitting")
    out = Path(out) if out is not None else checkpoint_file(family, recipe)
    check_target(out, overwrite)
    state = state_path_for(out)
    pattern = state.name.replace(".state", "-*.state")  # one state per DAGAN loss: NAME-LOSS.state.pt
    states = sorted(out.parent.glob(pattern))
    if resume and not states:
        raise ValueError(f"nothing to resume: no training state beside {out}; start without --resume")
    if states and not resume and not overwrite:
        raise ValueError(f"{states[0]} holds an unfinished run; continue it with --resume, or pass --overwrite to "
                         "start again and replace it")
    device = get_device(device)
    if data is None:
        from ..data import load_omniglot
        data = load_omniglot(device=device, progress=progress)
    names = ("protonet", "finetune") if family in ("vae", "gan") else ("protonet",)
    backbones = [pretrained(n, profile=BACKBONE_RECIPE, device=device).backbone for n in names]
    with tempfile.TemporaryDirectory() as tmp:  # train into a fresh file, then replace atomically
        path = Path(tmp) / f"{family}.pt"
        extra = {"state": state, "resume": resume} if family == "gan" else {}
        for b in backbones:
            LOADERS[family](data, recipe, backbone=b, seed=seed, device=device, progress=progress, path=path, **extra)
        written = atomic_torch_save(load_checkpoint(path), out)
    for st in out.parent.glob(pattern):
        st.unlink()  # the runs are finished and stored
    return written


# ---- command line: python -m fslcourse evaluate NAME --augment GEN --n-generated M ... ----------------------
def add_augment_arguments(parser, whole=lambda minimum, maximum=None: int) -> None:
    """Add ``--augment``, ``--n-generated`` and ``--generation-seed`` to the ``evaluate`` sub-parser; ``whole(m)``
    is the command line's type for a whole number of at least ``m`` (``cli.whole``)."""
    parser.add_argument("--augment", default=None, metavar="GENERATOR", choices=sorted(GENERATORS) + sorted(CONTROLS),
                        help=f"add generated support examples from a committed generator ({', '.join(sorted(GENERATORS))}) "
                             f"or an untrained control ({', '.join(sorted(CONTROLS))}) and report the paired "
                             "difference against no augmentation")
    parser.add_argument("--n-generated", type=whole(1), nargs="+", default=None, metavar="M",
                        help="generated examples per class; several values give several rows (default: 5)")
    parser.add_argument("--generation-seed", type=whole(0, SEED_MAX), default=0, help="seed of the generator's noise")


def evaluate_augmented(args, check_model=lambda model: None) -> dict:
    """Run ``evaluate --augment``: print and return (and write to ``--json``) the paired record.

    ``check_model(model)`` may refuse the loaded method before the data is loaded (``cli``: an episode shape its
    head cannot run, with the command that can)."""
    from .. import methods  # noqa: F401  (registers every method)
    from ..data import load_omniglot
    from ..generative.augment import evaluate_paired
    from ..pretrained import checkpoint_info, pretrained
    from ..results import result_record, write_record

    if getattr(args, "within_alphabet", False):  # evaluate_paired draws episodes across alphabets: the record said so, silently
        raise ValueError("--within-alphabet: --augment's paired episodes are drawn across alphabets only; leave out "
                         "--within-alphabet, or --augment")
    control = CONTROLS.get(args.augment)  # an untrained control: no checkpoint, no recipe
    try:
        trained_on = checkpoint_info(args.name, args.profile).get("split_protocol")
    except (FileNotFoundError, ValueError):  # no checkpoint (pixel), or none of this recipe: pretrained() says so
        trained_on = None
    if trained_on == "vinyals":  # refused by evaluate() after loading, naming a library call
        raise ValueError(f"--augment measures on the alphabet split, but {args.name}-{args.profile}.pt was trained on "
                         "the Vinyals split, whose meta-train classes include that split's test characters; augment "
                         "a checkpoint of the alphabet split (e.g. --profile quick), or leave out --augment")
    if control is None:
        builder = get_generator(args.augment)  # fail on an unknown name or recipe before loading anything
        family = CHECKPOINT_FAMILY[args.augment]
        if args.profile not in FAMILY_RECIPES[family]:
            raise ValueError(f"--augment {args.augment} has no {args.profile!r} generator ({family} recipes: "
                             f"{', '.join(FAMILY_RECIPES[family])}); give --profile one of them")
    device = get_device(args.device)
    method = pretrained(args.name, profile=args.profile, device=device)
    check_model(method)
    data = load_omniglot(device=device, progress=False)
    if control is not None:
        gen = control()
    else:
        with committed_only():  # evaluating never trains a generator, nor overwrites a committed checkpoint
            gen = builder(data, backbone=getattr(method, "backbone", None), profile=args.profile, device=device,
                          seed=args.generation_seed, progress=False)
    results = evaluate_paired(method, gen, data.split(args.split), args.n_way, args.n_shot, args.n_generated or [5],
                              args.n_query, args.episodes, seed=args.seed, generation_seed=args.generation_seed,
                              method_name=args.name, generator_name=args.augment, device=device)
    for r in results:
        print(r)
    first = results[0]
    try:
        info = checkpoint_info(args.name, args.profile)
    except FileNotFoundError:
        info = {}
    record = result_record(args.name, first.augmented, config=info.get("config", method.config()),
                           seed=info.get("seed"), device=device, profile=args.profile,
                           train_seconds=info.get("train_seconds"),
                           extra={**first.as_dict(), "method": f"{args.name}+{args.augment}",
                                  "augment": {"generator": args.augment, "generation_seed": args.generation_seed,
                                              "space": gen.space},
                                  "by_n_generated": [r.as_dict() for r in results]})
    if args.json:
        write_record(record, args)
    return record
