"""benchmarks/learning_curves.py: every curve is trained on the same terms (split, width, constant rate, validation
episodes) and every method's steps buy the same CPU budget by the committed pilot."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import learning_curves as lc  # noqa: E402


@pytest.mark.parametrize("name", lc.METHODS)
def test_every_curve_recipe_is_the_paper_recipe_on_the_same_terms(name):
    recipe = lc.curve_recipe(name, lc.STEPS[name])
    assert recipe.options["split"] == "vinyals" and recipe.schedule == "constant" and lc.width(recipe) == 64
    assert (recipe.val_n_way, recipe.val_n_shot, recipe.val_n_query, recipe.val_episodes) == (5, 1, 5, 100)
    assert recipe.steps == lc.STEPS[name] and recipe.val_every == max(1, recipe.steps // lc.VALIDATIONS)
    assert recipe.options.get("val_settings", {}) == {}  # validated as it is tested


def test_the_steps_buy_the_same_budget_by_the_committed_pilot():
    pilot = json.loads((ROOT / "results" / "learning_curves" / "pilot.json").read_text())
    assert pilot["budget_cpu_seconds"] == lc.BUDGET_CPU_S
    for name in lc.METHODS:
        per_step = pilot["pilot"][name]["cpu_seconds_per_step"]
        assert pilot["pilot"][name]["steps_for_budget"] == lc.STEPS[name], name
        assert abs(lc.STEPS[name] * per_step - lc.BUDGET_CPU_S) <= per_step, name


def test_a_width_other_than_64_is_refused(monkeypatch):
    from fslcourse.recipe import Recipe

    narrow = Recipe(steps=10, lr=1e-3, model={"backbone_kwargs": {"hidden": 32}})
    monkeypatch.setattr(lc, "recipe_for", lambda name, recipe: (recipe, narrow))
    with pytest.raises(ValueError, match="64 filters"):
        lc.curve_recipe("protonet", 10)
