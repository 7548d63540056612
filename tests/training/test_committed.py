"""Every committed method checkpoint was made by ``python -m fslcourse train NAME --recipe R``: it records its
method's current recipe ``R``, exactly, and the code as it is now retraces the first steps of its run."""
import pytest

from fslcourse.io import load_checkpoint, state_path_for
from fslcourse.methods import METHODS
from fslcourse.pretrained import checkpoint_info, checkpoint_path
from fslcourse.training.generators import FAMILIES

COMMITTED = sorted(n for n, cls in METHODS.items() if cls.trainable and checkpoint_path(n).exists())
OTHER_RECIPES = sorted((n, r) for n, cls in METHODS.items() if cls.trainable for r in getattr(cls, "RECIPES", {})
                       if r != "quick" and checkpoint_path(n, r).exists())
IN_PROGRESS = sorted((n, r) for n, cls in METHODS.items() if cls.trainable for r in getattr(cls, "RECIPES", {})
                     if state_path_for(checkpoint_path(n, r)).exists())  # committed states of runs across sittings


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def test_the_committed_checkpoints_are_found():
    assert {"protonet", "finetune", "maml", "fomaml", "reptile", "matching", "relation", "mtl",
            "mtl-theta-only"} <= set(COMMITTED)


@pytest.mark.parametrize("name", COMMITTED)
def test_checkpoint_was_trained_by_the_quick_recipe(name):
    info, recipe = checkpoint_info(name), METHODS[name].RECIPES["quick"]
    assert {k: _plain(v) for k, v in recipe.model.items()} == {k: _plain(info["config"][k]) for k in recipe.model}
    diff = recipe.differs_from(info.get("recipe", {}))  # its note is documentation, and may be made more exact
    assert diff == [], f"{name}-quick.pt was not made by its current quick recipe (differs in {', '.join(diff)})"
    assert info.get("recipe_name") == "quick" and info.get("steps") == recipe.steps


def test_the_other_committed_recipes_are_found():
    assert {("protonet", "minimal"), ("protonet", "minimal-synthetic")} <= set(OTHER_RECIPES)
    assert set(IN_PROGRESS).isdisjoint(OTHER_RECIPES), "a finished run's state is left beside its checkpoint"


@pytest.mark.parametrize("name,recipe_name", OTHER_RECIPES)
def test_checkpoint_was_trained_by_its_recipe(name, recipe_name):
    info, recipe = checkpoint_info(name, recipe_name), METHODS[name].RECIPES[recipe_name]
    # How often the resumable state was written (--state-every on a long run) does not shape the weights
    # (tests/test_train_faults.py: a stopped and resumed run is bitwise the uninterrupted one); all else must match.
    # The note (where the recipe comes from, its departures) is documentation; it may be made more exact.
    diff = [k for k in recipe.differs_from(info.get("recipe", {})) if k != "state_every"]
    assert diff == [], f"{name}-{recipe_name}.pt was not made by its current recipe (differs in {', '.join(diff)})"
    assert info.get("recipe_name") == recipe_name and info.get("steps") == recipe.steps


def test_every_committed_generator_records_the_recipe_its_loader_trains_now():
    """Each generator checkpoint (``python -m fslcourse train FAMILY``) was made by the recipe the package holds:
    a recipe edited without retraining would leave a file that the same command no longer reproduces."""
    from fslcourse.generative.deformation_vae import RECIPES as DEFORMATION_VAE
    from fslcourse.generative.diffusion import RECIPES as DIFFUSION
    from fslcourse.generative.gan import RECIPES as GAN
    from fslcourse.generative.gan import RECIPES_DEFORMING
    from fslcourse.generative.hallucinator import RECIPES as HALLUCINATOR
    from fslcourse.generative.vae import RECIPES as VAE
    from fslcourse.training.generators import checkpoint_file

    def recipe_of(family, *keys):
        entry = load_checkpoint(checkpoint_file(family, "quick"))
        for key in keys:
            entry = entry[key]
        return entry["recipe"]

    want = {("vae", "pixel"): VAE["quick"]["pixel"], ("deformation-vae",): DEFORMATION_VAE["quick"],
            ("diffusion",): DIFFUSION["quick"], ("deformation-gan",): RECIPES_DEFORMING["quick"],
            ("gan", "pixel", "wgan-gp"): GAN["quick"].replace(options={"loss": "wgan-gp"}),
            ("gan", "pixel", "standard"): GAN["quick"].replace(optimizer_kwargs={"betas": (0.5, 0.999)},
                                                               options={"loss": "standard", "keep": "last"})}
    assert {family for family, *_ in want} == set(FAMILIES), "a generator family has no recipe check here: add it"
    for (family, *keys), recipe in want.items():
        assert recipe_of(family, *keys) == recipe.as_dict(), f"{family} {'/'.join(keys)}: not its current recipe"
    for family, r in (("vae", VAE["quick"]["feature"]), ("gan", HALLUCINATOR["quick"])):
        for fp, entry in load_checkpoint(checkpoint_file(family, "quick"))["feature"].items():
            assert entry["recipe"] == r.as_dict(), f"{family} feature {fp}: not its current recipe"


def _close(got, want, where: str) -> None:
    """``got`` equals ``want`` key for key, floats to 1e-4 (another CPU may round a sum differently)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            _close(got[k], want[k], f"{where}/{k}")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _close(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-4), where
    else:
        assert got == want, where


def test_every_committed_generator_stores_the_metrics_of_its_weights(omniglot):
    """The metrics a generator checkpoint stores are recomputed from its weights: the VAEs' held-out ELBO (pixels,
    each backbone's features, the deformation VAE) and each hallucinator's paired meta-validation gain."""
    import torch

    import fslcourse
    from fslcourse.generative.augment import backbone_fingerprint
    from fslcourse.generative.deformation_vae import DeformationVAE
    from fslcourse.generative.hallucinator import FeatureHallucinator
    from fslcourse.generative.vae import ConditionalVAE, FeatureVAE
    from fslcourse.recipe import Recipe
    from fslcourse.training.generators import _elbo_metrics, _val_features, checkpoint_file, hallucinator_metrics

    torch.set_num_threads(1)
    backbones = {backbone_fingerprint(b): b for b in
                 (fslcourse.pretrained(n, device="cpu").backbone for n in ("protonet", "finetune"))}

    def model(cls, entry):
        m = cls(**entry["config"])
        m.load_state_dict(entry["state_dict"])
        return m.eval()

    vae, checked = load_checkpoint(checkpoint_file("vae")), []
    entries = [("vae pixel", ConditionalVAE, vae["pixel"], None, _elbo_metrics),
               ("deformation-vae", DeformationVAE, load_checkpoint(checkpoint_file("deformation-vae")), None,
                _elbo_metrics)]
    entries += [(f"vae feature {fp}", FeatureVAE, e, fp, _elbo_metrics) for fp, e in vae["feature"].items()]
    entries += [(f"hallucinator {fp}", FeatureHallucinator, e, fp, hallucinator_metrics)
                for fp, e in load_checkpoint(checkpoint_file("gan"))["feature"].items()]
    features = {}  # (fingerprint, seed) -> features: a backbone's feature VAE and hallucinator share them
    for where, cls, entry, fp, metrics in entries:
        assert "metrics" in entry, f"{where}: no metrics; retrain it with python -m fslcourse train FAMILY --overwrite"
        recipe = Recipe.from_dict(entry["recipe"])
        if fp is not None and (fp, recipe.seed) not in features:
            features[fp, recipe.seed] = _val_features(backbones[fp], omniglot, recipe.seed)
        val = omniglot.val if fp is None else features[fp, recipe.seed]
        _close(metrics(model(cls, entry), val, recipe), entry["metrics"], where)
        checked.append(where)
    assert len(checked) == 6, checked  # pixel, deformation, and two backbones' feature VAE and hallucinator


def test_the_committed_sinusoid_regressors_store_their_curves():
    from fslcourse.training import load_or_train
    from fslcourse.training.sinusoid import sinusoid_metrics

    out = load_or_train("sinusoid", save=False)
    assert not out["trained"] and "metrics" in out["record"], "retrain: python -m fslcourse train sinusoid --overwrite"
    _close(sinusoid_metrics(out["models"], out["record"]["seed"]), out["record"]["metrics"], "sinusoid")


# --- The code still trains what was committed --------------------------------------------------------------------
# The checks above compare recipes: they cannot see a change to the code that trains (another draw order, another
# initialisation, another loss or inner loop), after which `python -m fslcourse train NAME --recipe R` no longer makes
# the committed file. Each checkpoint stores its run's per-step losses, and the code as it is now retraces its first
# two steps. The first step's loss (initial weights, the first batch, the forward pass and, for MAML's family, the
# whole inner loop) must agree to 1e-4; a machine other than the one that trained it rounds it differently by about
# 1e-7. The second, after one optimizer update, to 1e-2 only: Adam's first update is about lr * sign(gradient), so a
# gradient that rounds to the other sign moves its weight by a whole step, and the second loss differed by up to 1e-4
# between this machine and the ones that trained the paper checkpoints (fomaml-paper-20way 9.7e-5,
# matching-paper-5way 5.5e-5). So the second step catches a broken update, not a subtle one: a 20% larger learning
# rate moves it by 1e-2 to 3e-2 for ProtoNet, Matching, Relation and Reptile but by 4e-4 to 2e-3 for MAML,
# fine-tuning and MTL; a doubled one fails 13 of the 16 quick methods and both VAEs, not the GANs or diffusion.
FIRST_STEPS = 2
TOLERANCE = (1e-4, 1e-2)  # relative, for step 1 and step 2


class _StopAfterFirstSteps:
    """Stands in for the loop's Ctrl-C handler: asks to stop once ``FIRST_STEPS`` steps have run."""

    def __init__(self):
        self.asked = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @property
    def requested(self) -> bool:  # the loop reads it once after each step
        self.asked += 1
        return self.asked >= FIRST_STEPS


def _train_series(log: dict) -> dict:
    """The per-step training series of a stored log (``TrainLog.as_dict()``, plus what a generator's loader adds):
    the lists with a value a step that are neither a time nor a step count, nor a training accuracy (a count of
    right queries: a rounding difference that flips one near-tied query moves it by a whole query)."""
    return {k: v for k, v in log.items() if isinstance(v, list) and len(v) == len(log["step"])
            and k not in ("step", "steps", "seconds", "cpu_seconds", "accuracy") and not k.startswith("val_")}


def _assert_retraced(got: dict, stored: dict, where: str) -> None:
    got = {k: v for k, v in got.items() if k != "accuracy"}  # as _train_series leaves it out
    assert set(got) == set(_train_series(stored)), f"{where}: logs {sorted(got)}, the file {sorted(stored)}"
    for key, values in got.items():
        assert len(values) == FIRST_STEPS, f"{where}: {len(values)} steps ran"
        for step, (now, then, rel) in enumerate(zip(values, stored[key], TOLERANCE), start=1):
            assert now == pytest.approx(then, rel=rel, abs=1e-6), (
                f"{where}: {key} at step {step} is {now} now and {then} in the file: the code no longer trains "
                "what was committed; mend the change, or retrain the file (docs/DEVELOPING.md)")


@pytest.fixture
def first_steps_only(monkeypatch):
    """The loop stops after ``FIRST_STEPS`` steps, on one thread (the thread count is restored afterwards)."""
    import torch

    import fslcourse.training.loop as loop

    monkeypatch.setattr(loop, "_StopRequest", _StopAfterFirstSteps)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name,recipe_name", [(n, "quick") for n in COMMITTED] + OTHER_RECIPES + IN_PROGRESS)
def test_training_now_retraces_the_first_steps_of_the_committed_run(name, recipe_name, first_steps_only, capsys):
    """Finished checkpoints, and the committed states of runs across sittings: a sitting that resumes one goes on
    with the code as it is then, which must still be the code that made its first steps."""

    from fslcourse.training import train

    path = checkpoint_path(name, recipe_name)
    info = checkpoint_info(name, recipe_name) if path.exists() else load_checkpoint(state_path_for(path))
    _, result = train(name, recipe_name, save=False, progress=False, device="cpu")
    assert result.stopped == "interrupted" and "interrupted at step" in capsys.readouterr().out
    _assert_retraced(result.history.train, info["log"], f"{name}-{recipe_name}.pt")


class _FirstRunDone(Exception):
    pass


@pytest.mark.parametrize("family", sorted(FAMILIES))  # every family, a new one too
def test_training_now_retraces_the_first_steps_of_each_committed_generator(family, first_steps_only, monkeypatch,
                                                                           omniglot, tmp_path):
    """A generator family trains several models in turn; the first one's first steps are retraced, and matched
    against whichever of the file's models it is."""

    import fslcourse.training.generators as generators

    runs, real_fit = [], generators.fit

    def fit_then_stop(*args, **kwargs):
        runs.append(real_fit(*args, **dict(kwargs, progress=False)).history.train)
        raise _FirstRunDone

    def stored_logs(entry):
        if isinstance(entry, dict):
            if "history" in entry and "cpu_seconds" in entry["history"]:
                yield entry["history"]
            for value in entry.values():
                yield from stored_logs(value)

    monkeypatch.setattr(generators, "fit", fit_then_stop)
    with pytest.raises(_FirstRunDone):
        generators.train_generator(family, data=omniglot, out=tmp_path / "g.pt", device="cpu",
                                   progress=False)
    logs = list(stored_logs(load_checkpoint(generators.checkpoint_file(family, "quick"))))
    run = {k: v for k, v in runs[0].items() if k != "accuracy"}
    first = [log for log in logs if set(_train_series(log)) == set(run)
             and all(log[k][0] == pytest.approx(v[0], rel=TOLERANCE[0], abs=1e-6) for k, v in run.items())]
    assert len(first) == 1, f"{family}: the first run's first step matches {len(first)} of the file's {len(logs)} logs"
    _assert_retraced(runs[0], first[0], f"{family}-quick.pt")


def test_training_now_retraces_the_first_steps_of_the_committed_sinusoid_regressors(first_steps_only, monkeypatch):
    """The first regressor of ``sinusoid-quick.pt`` (notebook 05), as for a generator family."""
    import fslcourse.training.sinusoid as sinusoid

    runs, real_fit = [], sinusoid.fit

    def fit_then_stop(*args, **kwargs):
        runs.append((kwargs["label"], real_fit(*args, **kwargs).history.train))
        raise _FirstRunDone

    monkeypatch.setattr(sinusoid, "fit", fit_then_stop)
    with pytest.raises(_FirstRunDone):
        sinusoid.train_sinusoid("quick")
    (label, got), = runs
    logs = load_checkpoint(sinusoid.CHECKPOINT_DIR / "sinusoid-quick.pt")["record"]["logs"]
    _assert_retraced(got, logs[label.removeprefix("sinusoid ")], f"sinusoid-quick.pt {label}")
