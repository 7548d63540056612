"""Every committed method checkpoint was made by ``python -m fslcourse train NAME --recipe quick``: it
records its method's current quick recipe, exactly."""
import pytest

from fslcourse.methods import METHODS
from fslcourse.pretrained import checkpoint_info, checkpoint_path

COMMITTED = sorted(n for n, cls in METHODS.items() if cls.trainable and checkpoint_path(n).exists())


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
