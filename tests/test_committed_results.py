"""The committed result records name the exact checkpoint files they measured, and those files are the ones
committed now: retraining a checkpoint makes its old records fail here until they are measured again."""
import json

import pytest

from fslcourse.io import file_source
from fslcourse.pretrained import CHECKPOINT_DIR
from fslcourse.report import REPO_RESULTS, checkpoint_method
from fslcourse.training.generators import CHECKPOINT_FAMILY


def committed_records():
    out = []
    for path in sorted(REPO_RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        for i, rec in enumerate(data.get("records", []) if isinstance(data, dict) else []):
            if rec.get("accuracy") is not None and rec["protocol"].get("split", "test") == "test":
                out.append((f"{path.name}[{i}] {rec['method']}", rec))
    return out


REMAKE = " (docs/INSTRUCTORS.md: the command that remakes each results file)"
SOURCES = {p.name: file_source(p)["sha256"] for p in CHECKPOINT_DIR.glob("*.pt") if not p.name.endswith(".state.pt")}


@pytest.mark.parametrize("where, rec", committed_records(), ids=[w for w, _ in committed_records()])
def test_a_committed_record_names_the_committed_checkpoint(where, rec):
    method, _, generator = rec["method"].partition("+")
    method = checkpoint_method(method)  # reptile-inductive, relation-batch-stats: the same checkpoint tested another way
    # a separate paper recipe (paper-20way, paper-5way) measures some cells of a paper row: its record names it
    own = f"{method}-{rec.get('recipe') or rec.get('profile') or 'quick'}.pt"
    if own not in SOURCES:  # a method without weights (pixel)
        assert rec.get("checkpoint") is None
        return
    src = rec.get("checkpoint")
    assert src is not None, f"{where} does not name the checkpoint it measured; re-measure it{REMAKE}"
    if "members" in src:  # an ensemble (fslcourse.methods.ensemble): each member's file, as committed now
        assert src["members"][0]["file"] == own, f"{where}: the first member is not {own}"
        for member in src["members"]:
            assert SOURCES.get(member["file"]) == member["sha256"], \
                f"{where} measured another {member['file']}; re-measure it with the committed file{REMAKE}"
        return
    assert src["file"] == own and src["sha256"] == SOURCES[own], \
        f"{where} measured another {own} (sha256 {src['sha256'][:12]}); re-measure it with the committed file{REMAKE}"
    if generator and generator not in CHECKPOINT_FAMILY:  # an untrained control (deformation, copy-noise)
        assert src.get("generator") is None, f"{where}: {generator} has no checkpoint, yet the record names one"
    elif generator:
        gen = src.get("generator")
        assert gen is not None, f"{where} does not name its generator's checkpoint; re-measure it{REMAKE}"
        family = f"{CHECKPOINT_FAMILY[generator]}-{rec.get('profile') or 'quick'}.pt"
        assert gen["file"] == family and gen["sha256"] == SOURCES[gen["file"]], \
            f"{where} used another {gen['file']}; re-measure it with the committed file{REMAKE}"


def test_predict_refines_with_the_steps_chosen_on_meta_validation():
    """``predict --transductive`` uses the soft k-means steps the one-shot ablation chose on meta-validation."""
    from fslcourse.methods.transductive import REFINE_STEPS

    records = json.loads((REPO_RESULTS / "oneshot_ablation.json").read_text())["records"]
    sweeps = [r["refine_steps_val_sweep"] for r in records if r.get("refine_steps_val_sweep")]
    assert sweeps, "results/oneshot_ablation.json has no soft k-means row; run benchmarks/oneshot_ablation.py"
    assert all(s == sweeps[0] for s in sweeps)
    chosen = int(max(sweeps[0], key=sweeps[0].get))
    assert REFINE_STEPS == chosen, f"REFINE_STEPS = {REFINE_STEPS}, but meta-validation chose {chosen}: {sweeps[0]}"


def _named_checkpoints(obj, where: str):
    """Every ``{"file": "NAME.pt", "sha256": ...}`` anywhere in a result file, with where it sits."""
    if isinstance(obj, dict):
        if isinstance(obj.get("file"), str) and obj["file"].endswith(".pt") and "sha256" in obj:
            yield where, obj
        for key, value in obj.items():
            yield from _named_checkpoints(value, f"{where}/{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _named_checkpoints(value, f"{where}[{i}]")


def test_every_checkpoint_a_result_file_names_is_the_committed_one():
    """Beyond the records above: benchmark files (generator quality, diffusion cost) name each generator they
    measured, and a retrained generator makes them stale too."""
    named, stale = 0, []
    for path in sorted(REPO_RESULTS.rglob("*.json")):
        for where, src in _named_checkpoints(json.loads(path.read_text()), path.name):
            if src["file"] in SOURCES:
                named += 1
                if src["sha256"] != SOURCES[src["file"]]:
                    stale.append(f"{where}: {src['file']} {src['sha256'][:12]}")
    assert named > 100, named
    assert not stale, f"these measured another file than the committed one; re-measure them{REMAKE}:\n" + "\n".join(stale[:20])



def test_the_test_protocol_sweeps_measure_what_the_benchmark_measures():
    """benchmarks/maml_test_protocol.py: with the recipe's test steps and the paper's queries per class, each paper
    checkpoint scores episode for episode what the course benchmark's Vinyals row recorded (same file, same episodes)."""
    sweep = json.loads((REPO_RESULTS / "maml_test_protocol.json").read_text())["records"]
    bench = json.loads((REPO_RESULTS / "11_benchmark.json").read_text())["records"]
    for method in ("maml", "fomaml"):
        steps = {r["test_inner_steps"]: r for r in sweep if r["method"] == method and r["sweep"] == "steps"}
        queries = {r["protocol"]["n_query"]: r for r in sweep if r["method"] == method and r["sweep"] == "queries"}
        assert {0, 1, 3, 10} <= set(steps) and {1, 5, 15} <= set(queries), \
            f"results/maml_test_protocol.json lacks some of {method}'s settings; re-run it"
        own = steps[steps[3]["recipe_test_inner_steps"]]
        ref = next(r for r in bench if r["method"] == method and r.get("profile") == "paper"
                   and r["protocol"].get("split_protocol") == "vinyals" and r["protocol"]["n_way"] == 5
                   and r["protocol"]["n_shot"] == 1)
        assert own["checkpoint"]["sha256"] == ref["checkpoint"]["sha256"]
        assert own["protocol"] == ref["protocol"] and own["episodes"] == ref["episodes"]
        assert own["episode_accuracies"] == ref["episode_accuracies"] and own["paired_vs_benchmark"] == 0.0
        assert queries[own["protocol"]["n_query"]]["episode_accuracies"] == own["episode_accuracies"]
        assert steps[0]["accuracy"] < own["accuracy"]  # the head of a 5-way model untouched by the support set
        for k, r in steps.items():
            assert r["config"]["test_inner_steps"] == k and r["eval_seconds"] is None


def test_matching_training_ways_measure_what_the_benchmark_measures():
    """benchmarks/matching_training_ways.py: each Matching Networks paper checkpoint scores, episode for episode, what
    the course benchmark's Vinyals row recorded for the cell it measures there (the 5-way-trained model's 5-way 1-shot
    cell, the 20-way-trained model chosen on 20-way validation for the 20-way 1-shot cell); each paired difference
    from ``matching-paper.pt`` is the records' own, on the same episodes."""
    ways = json.loads((REPO_RESULTS / "matching_training_ways.json").read_text())["records"]
    bench = json.loads((REPO_RESULTS / "11_benchmark.json").read_text())["records"]
    mine = {(r["recipe"], r["protocol"]["n_way"]): r for r in ways}
    recipes = ("paper", "paper-5way", "paper-20way")
    assert set(mine) == {(rec, n) for rec in recipes for n in (5, 20)}, \
        "results/matching_training_ways.json lacks a setting; re-run benchmarks/matching_training_ways.py"
    for recipe, n_way in (("paper-5way", 5), ("paper-20way", 20)):
        own = mine[recipe, n_way]
        ref = next(r for r in bench if r["method"] == "matching" and r.get("profile") == "paper"
                   and r["protocol"].get("split_protocol") == "vinyals" and r["protocol"]["n_way"] == n_way
                   and r["protocol"]["n_shot"] == 1)
        assert (ref.get("recipe") or "paper") == recipe, f"the benchmark's matching {n_way}w1s cell is not {recipe}'s"
        assert own["checkpoint"]["sha256"] == ref["checkpoint"]["sha256"] and own["protocol"] == ref["protocol"]
        assert own["episode_accuracies"] == ref["episode_accuracies"] and own["eval_seconds"] is None
    for recipe in recipes[1:]:
        for n_way in (5, 20):
            a, b = mine[recipe, n_way], mine["paper", n_way]
            assert a["protocol"] == b["protocol"] and a["checkpoint"]["sha256"] != b["checkpoint"]["sha256"]
            diffs = [x - y for x, y in zip(a["episode_accuracies"], b["episode_accuracies"])]
            assert a["paired_vs_paper"] == pytest.approx(sum(diffs) / len(diffs), abs=1e-3)


def test_the_instructors_table_of_paper_runs_is_current():
    """docs/INSTRUCTORS.md shows where each paper-recipe run stands: the table must be the one the committed
    checkpoints and training states give now (re-print it after committing a state or a finished run)."""
    from pathlib import Path

    from fslcourse.report import paper_runs_table

    text = (Path(__file__).resolve().parent.parent / "docs" / "INSTRUCTORS.md").read_text()
    shown = text.split("<!-- paper-runs:", 1)[1].split("-->", 1)[1].split("<!-- /paper-runs -->", 1)[0]
    assert shown.strip() == paper_runs_table().strip(), \
        "docs/INSTRUCTORS.md's table of paper runs is out of date; python scripts/paper_runs.py --write re-prints it"


def test_the_instructors_table_of_20_way_step_costs_is_the_record():
    """The per-step CPU costs in docs/INSTRUCTORS.md, and what it derives from them (the runs' CPU-hours, the 20-way
    to 5-way ratios, the total), come from results/step_cost.json (benchmarks/step_cost.py --json), not from a
    figure typed in once."""
    import re
    from pathlib import Path

    rows = {(r["method"], r["recipe"]): r for r in json.loads((REPO_RESULTS / "step_cost.json").read_text())["rows"]}
    text = (Path(__file__).resolve().parent.parent / "docs" / "INSTRUCTORS.md").read_text()
    table = re.findall(r"^\| (\w+) \| ([\d.]+) \| ([\d.]+) \| ([\d ]+) steps, about (\d+) CPU-hours \|$", text, re.M)
    assert [m for m, *_ in table] == ["relation", "fomaml", "maml", "reptile"], table
    hours, ratios = [], []
    for method, paper, twenty, steps, about in table:
        five, run = rows[method, "paper"], rows[method, "paper-20way"]
        assert (paper, twenty) == (f"{five['cpu_seconds_per_step']:.3f}", f"{run['cpu_seconds_per_step']:.3f}"), method
        assert int(steps.replace(" ", "")) == run["recipe_steps"]
        hours.append(run["recipe_steps"] * run["cpu_seconds_per_step"] / 3600)
        assert int(about) == round(hours[-1]), (method, about, hours[-1])
        ratios.append(run["cpu_seconds_per_step"] / five["cpu_seconds_per_step"])
    prose = " ".join(text.split())  # the sentences may break across lines
    assert f"a 20-way step costs {min(ratios):.1f} to {max(ratios):.1f} times a 5-way one" in prose
    assert f"Together the four runs are estimated at about {round(sum(hours))} CPU-hours" in prose
