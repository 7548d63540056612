"""Every committed method checkpoint was made by ``python -m fslcourse train NAME --recipe R``: it records its
method's current recipe ``R``, exactly."""
import pytest

from fslcourse.methods import METHODS
from fslcourse.pretrained import checkpoint_info, checkpoint_path

COMMITTED = sorted(n for n, cls in METHODS.items() if cls.trainable and checkpoint_path(n).exists())
OTHER_RECIPES = sorted((n, r) for n, cls in METHODS.items() if cls.trainable for r in getattr(cls, "RECIPES", {})
                       if r != "quick" and checkpoint_path(n, r).exists())


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
    from fslcourse.io import load_checkpoint
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
    from fslcourse.training.generators import FAMILIES
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
    from fslcourse.io import load_checkpoint
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
