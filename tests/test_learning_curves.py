"""benchmarks/learning_curves.py: every curve is trained on the same terms (split, width, constant rate, validation
episodes) and every method's steps buy the same CPU budget by the committed pilot."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import learning_curves as lc  # noqa: E402


@pytest.mark.parametrize("name", [m for m in lc.CURVES if m != "mtl"])
def test_every_curve_recipe_is_the_paper_recipe_on_the_same_terms(name):
    recipe = lc.curve_recipe(name, lc.STEPS[name])
    assert recipe.options["split"] == "vinyals" and recipe.schedule == "constant" and lc.width(recipe) == 64
    assert (recipe.val_n_way, recipe.val_n_shot, recipe.val_n_query, recipe.val_episodes) == (5, 1, 5, 100)
    assert recipe.steps == lc.STEPS[name] and recipe.val_every == max(1, recipe.steps // lc.VALIDATIONS)
    assert recipe.options.get("val_settings", {}) == {}  # validated as it is tested
    if name in lc.VARIANTS:  # the base method's curve recipe, with only the variant's model changes
        base, changes = lc.VARIANTS[name]
        plain = lc.curve_recipe(base, recipe.steps).as_dict()
        mine = recipe.as_dict()
        assert {k: v for k, v in mine["model"].items() if k not in changes} == \
            {k: v for k, v in plain["model"].items() if k not in changes}
        assert {k: v for k, v in mine.items() if k != "model"} == {k: v for k, v in plain.items() if k != "model"}
        assert all(recipe.model[k] == v for k, v in changes.items())


def test_the_steps_buy_the_same_budget_by_the_committed_pilot():
    pilot = json.loads((ROOT / "results" / "learning_curves" / "pilot.json").read_text())
    assert pilot["budget_cpu_seconds"] == lc.BUDGET_CPU_S
    for name in lc.CURVES:
        per_step = pilot["pilot"][name]["cpu_seconds_per_step"]
        assert pilot["pilot"][name]["steps_for_budget"] == lc.STEPS[name], name
        phase1 = lc.MTL_PHASE1_STEPS * pilot["pilot"]["finetune"]["cpu_seconds_per_step"] if name == "mtl" else 0.0
        assert abs(phase1 + lc.STEPS[name] * per_step - lc.BUDGET_CPU_S) <= per_step, name


def test_mtl_is_pretrained_as_the_fine_tuning_baseline_then_meta_transferred_on_the_same_conv4():
    phase1, phase2 = lc.mtl_recipes(lc.STEPS["mtl"])
    finetune = lc.curve_recipe("finetune", lc.STEPS["finetune"])
    assert (phase1.trainer, phase2.trainer) == ("pretrain", "meta-transfer")
    assert (phase1.n_way, phase1.n_shot, phase1.lr, phase1.optimizer) == (
        finetune.n_way, finetune.n_shot, finetune.lr, finetune.optimizer)
    assert phase1.steps == lc.MTL_PHASE1_STEPS == lc.STEPS["finetune"] // 2 and phase2.steps == lc.STEPS["mtl"]
    for r in (phase1, phase2):
        assert r.model["backbone"] == "conv4" and r.model["hidden"] == 64 and r.schedule == "constant"
        assert r.options["split"] == "vinyals"
        assert (r.val_n_way, r.val_n_shot, r.val_n_query, r.val_episodes) == (5, 1, 5, 100)
    assert phase2.options["hard_tasks"] > 0  # scale and shift with hard tasks, the paper's MTL
    assert phase1.steps // phase1.val_every + phase2.steps // phase2.val_every == lc.VALIDATIONS


def test_train_points_leave_the_validations_cpu_out():
    log = {"val_step": [2, 4], "cpu_seconds": [1.0, 3.0, 4.0, 9.0], "val_cpu_seconds": [1.5, 4.0]}
    assert lc.train_points(log) == ([2, 4], [3.0, 7.5])


def test_phase_2_starts_where_phase_1_training_ended():
    # the validation at the last step (4) is logged after that step's CPU time: only step 2's is left out
    log = {"step": [1, 2, 3, 4], "val_step": [2, 4], "cpu_seconds": [1.0, 3.0, 4.0, 9.0], "val_cpu_seconds": [1.5, 4.0]}
    assert lc.training_cpu(log) == 7.5 == lc.train_points(log)[1][-1]
    log = {"step": [1, 2, 3], "val_step": [2], "cpu_seconds": [1.0, 3.0, 4.0], "val_cpu_seconds": [1.5]}
    assert lc.training_cpu(log) == 2.5  # no validation at the last step: every earlier one is left out


def test_a_width_other_than_64_is_refused(monkeypatch):
    from fslcourse.recipe import Recipe

    narrow = Recipe(steps=10, lr=1e-3, model={"backbone_kwargs": {"hidden": 32}})
    monkeypatch.setattr(lc, "recipe_for", lambda name, recipe: (recipe, narrow))
    with pytest.raises(ValueError, match="64 filters"):
        lc.curve_recipe("protonet", 10)


def test_episodes_seen_counts_meta_batches_and_mtl_tasks():
    from types import SimpleNamespace

    from fslcourse.recipe import Recipe

    recipe = Recipe(steps=10, lr=1e-3, meta_batch=4)
    assert lc.episodes_seen(recipe, SimpleNamespace()) == 40
    mtl = SimpleNamespace(tasks_seen=37)  # ordinary and hard tasks, as MTL's hook counts them
    assert lc.episodes_seen(recipe, mtl, phase1=Recipe(steps=5, lr=1e-3)) == 42


@pytest.mark.parametrize("name", lc.CURVES)
def test_every_committed_curve_was_made_by_its_current_curve_recipe(name):
    """A recipe change (Reptile's inner Adam, MAML's query count) makes its committed curve stale: re-run it."""
    path = lc.OUT / f"{name}.json"
    if not path.exists():
        pytest.skip(f"no committed curve for {name}")
    record = json.loads(path.read_text())
    want = lc.mtl_recipes(lc.STEPS[name])[1] if name == "mtl" else lc.curve_recipe(name, lc.STEPS[name])
    def shaping(recipe: dict) -> dict:  # the note is prose about the recipe: it does not shape the run
        return {k: v for k, v in recipe.items() if k != "note"}
    assert shaping(record["recipe"]) == shaping(json.loads(json.dumps(want.as_dict()))), \
        f"results/learning_curves/{name}.json is stale: run benchmarks/learning_curves.py --method {name} --overwrite"


def test_mtls_curve_puts_phase_2_after_phase_1s_training_cpu(monkeypatch, tmp_path):
    """run_curve("mtl") with both phases stubbed: phase 2's first point sits at phase 1's training CPU (7.5 s: its
    last validation, at its last step, is not in its last logged CPU time) plus phase 2's own."""
    from types import SimpleNamespace

    from fslcourse.evaluate import EvalResult
    from fslcourse.training.log import TrainLog

    r1, r2 = lc.mtl_recipes(4)
    log1 = {"step": [1, 2, 3, 4], "val_step": [2, 4], "cpu_seconds": [1.0, 3.0, 4.0, 9.0], "val_cpu_seconds": [1.5, 4.0],
            "val_accuracy": [50.0, 60.0], "val_ci95": [1.0, 1.0], "sittings": [{}]}
    log2 = TrainLog()
    for s, cpu in ((1, 2.0), (2, 4.0)):
        log2.add_step(s, cpu, cpu, {"loss": 1.0})
    log2.add_val(2, {"accuracy": 70.0, "ci95": 1.0, "cpu_seconds": 0.5})
    result = SimpleNamespace(stopped="steps", log=log2, best_step=2, best_score=70.0)
    model = SimpleNamespace(tasks_seen=8)
    monkeypatch.setattr(lc, "train_mtl", lambda *a, **k: (model, result, log1, (r1, r2)))
    monkeypatch.setattr(lc, "evaluate", lambda *a, **k: EvalResult(
        accuracy=70.0, ci95=1.0, n_episodes=2, n_way=5, n_shot=1, n_query=5, seed=0, within_alphabet=False,
        seconds=0.1, episode_accuracies=[70.0, 70.0]))
    monkeypatch.setitem(lc.STEPS, "mtl", 2)
    record = lc.run_curve("mtl", SimpleNamespace(test=None), "cpu", tmp_path / "state", tmp_path)
    assert record["curve"]["train_cpu_seconds"] == [3.0, 7.5, 7.5 + 4.0]
    assert record["train_cpu_seconds"] == 11.5
