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
    assert info.get("recipe") == recipe.as_dict(), f"{name}-quick.pt was not made by its current quick recipe"
    assert info.get("recipe_name") == "quick" and info.get("steps") == recipe.steps


def test_the_other_committed_recipes_are_found():
    assert {("protonet", "minimal"), ("protonet", "minimal-synthetic")} <= set(OTHER_RECIPES)


@pytest.mark.parametrize("name,recipe_name", OTHER_RECIPES)
def test_checkpoint_was_trained_by_its_recipe(name, recipe_name):
    info, recipe = checkpoint_info(name, recipe_name), METHODS[name].RECIPES[recipe_name]
    # How often the resumable state was written (--state-every on a long run) does not shape the weights
    # (tests/test_train_faults.py: a stopped and resumed run is bitwise the uninterrupted one); all else must match.
    saved = {k: v for k, v in info.get("recipe", {}).items() if k != "state_every"}
    want = {k: v for k, v in recipe.as_dict().items() if k != "state_every"}
    assert saved == want, f"{name}-{recipe_name}.pt was not made by its current recipe"
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
    for (family, *keys), recipe in want.items():
        assert recipe_of(family, *keys) == recipe.as_dict(), f"{family} {'/'.join(keys)}: not its current recipe"
    for family, r in (("vae", VAE["quick"]["feature"]), ("gan", HALLUCINATOR["quick"])):
        for fp, entry in load_checkpoint(checkpoint_file(family, "quick"))["feature"].items():
            assert entry["recipe"] == r.as_dict(), f"{family} feature {fp}: not its current recipe"
