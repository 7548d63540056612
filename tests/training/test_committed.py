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
