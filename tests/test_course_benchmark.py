"""benchmarks/course_benchmark.py: a paper checkpoint of Reptile is measured transductively and not, on the same
episodes, as two rows whose records say which BatchNorm statistics the queries had."""
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import course_benchmark  # noqa: E402

from fslcourse.data import glyph_splits  # noqa: E402
from fslcourse.methods.reptile import Reptile  # noqa: E402
from fslcourse.report import REPO_RESULTS  # noqa: E402


def test_reptile_paper_rows_are_transductive_and_inductive(monkeypatch, capsys):
    torch.manual_seed(0)
    model = Reptile(n_way=5, hidden=4, inner_lr=1e-3, test_inner_steps=2, backend="loop", inner_optimizer="adam")
    monkeypatch.setattr(course_benchmark, "pretrained", lambda name, profile, device: model)
    monkeypatch.setattr(course_benchmark, "checkpoint_info", lambda name, profile: {"config": model.config()})
    train, val, test = glyph_splits()
    records = course_benchmark.run(["reptile"], SimpleNamespace(test=test), episodes=3, n_query=2, seed=0,
                                   device="cpu", generators=(), protocols=[dict(n_way=5, n_shot=1)], profile="paper")
    assert [r["method"] for r in records] == ["reptile", "reptile-inductive"]
    assert [r["protocol"]["batch_norm"] for r in records] == ["batch", "support+query"]
    assert [r["config"]["transductive"] for r in records] == [True, False]  # each row's config says how it ran
    assert records[0]["protocol"] == {**records[1]["protocol"], "batch_norm": "batch"}  # the same episodes
    assert model.transductive  # the model is left as it was loaded
    quick = course_benchmark.run(["reptile"], SimpleNamespace(test=test), episodes=2, n_query=2, seed=0,
                                 device="cpu", generators=(), protocols=[dict(n_way=5, n_shot=1)], profile="quick")
    assert [r["method"] for r in quick] == ["reptile"]  # the quick table keeps one row per method
    lines = [line.split(":")[0] for line in capsys.readouterr().out.splitlines() if "way" in line]
    assert lines == ["reptile (paper recipe) 5w1s", "reptile-inductive (paper recipe) 5w1s", "reptile 5w1s"], lines


def _loaded(model, n_shot):
    model.checkpoint_source = {"train_episodes": {"n_way": 5, "n_shot": n_shot}}  # as load_method sets it
    return model


def test_a_relation_net_summing_its_support_maps_runs_only_at_its_training_n_shot():
    from fslcourse.methods.relation import RelationNet

    summed, mean = _loaded(RelationNet(hidden=4, aggregate="sum"), 1), _loaded(RelationNet(hidden=4, aggregate="mean"), 1)
    five_shot, one_shot = dict(n_way=5, n_shot=5), dict(n_way=20, n_shot=1)
    why = course_benchmark.cannot_run(summed, five_shot)
    assert "trained 1-shot" in why and "5-shot" in why
    assert course_benchmark.cannot_run(summed, one_shot) is None  # any n_way: scores are per pair
    assert course_benchmark.cannot_run(mean, five_shot) is None  # a mean keeps its scale
    assert course_benchmark.cannot_run(RelationNet(hidden=4, aggregate="sum"), five_shot) is None  # not loaded
    x = torch.rand(10, 1, 28, 28)
    with pytest.raises(ValueError, match="trained 1-shot and sums a class's support maps.*give it 1 support example per class"):
        summed.predict(x, torch.arange(5).repeat(2), x)  # the model itself refuses, wherever it is used
    assert summed.predict(x[:5], torch.arange(5), x).shape == (10, 5)


def test_the_benchmark_records_why_it_skips_a_protocol(monkeypatch):
    from fslcourse.methods.relation import RelationNet

    torch.manual_seed(0)
    model = _loaded(RelationNet(hidden=4, aggregate="sum"), 1).eval()
    monkeypatch.setattr(course_benchmark, "pretrained", lambda name, profile, device: model)
    monkeypatch.setattr(course_benchmark, "checkpoint_info", lambda name, profile: {"config": model.config()})
    train, val, test = glyph_splits()
    records = course_benchmark.run(["relation"], SimpleNamespace(test=test), episodes=2, n_query=2, seed=0,
                                   device="cpu", generators=(),
                                   protocols=[dict(n_way=5, n_shot=1), dict(n_way=5, n_shot=5)], profile="paper")
    assert [r["method"] for r in records] == ["relation"] * 2 + ["relation-batch-stats"] * 2
    assert records[0]["accuracy"] is not None and "skipped" not in records[0]
    assert records[1]["accuracy"] is None and "summed support maps" in records[1]["skipped"]
    # the paper's code tests with batch statistics: a second row, on the same episodes, that says so
    assert records[0]["protocol"]["batch_norm"] == "running" and records[2]["protocol"]["batch_norm"] == "batch"
    assert {**records[2]["protocol"], "batch_norm": "running"} == records[0]["protocol"]
    assert records[2]["episode_accuracies"] != records[0]["episode_accuracies"]  # the statistics change predictions
    assert records[3]["accuracy"] is None and "summed support maps" in records[3]["skipped"]
    assert all(not m.training for m in model.modules())  # the model is left in eval mode, as loaded
    # with its paper's separate 20-way model committed, a 20-way 5-shot cell says why that one is not used either
    monkeypatch.setattr(course_benchmark, "checkpoint_path", lambda name, recipe: Path(__file__))  # "committed"
    (relation, _) = course_benchmark.run_checkpoint("relation", "paper", [dict(n_way=20, n_shot=5)],
                                                    SimpleNamespace(test=test), 2, 2, 0, "cpu", (), "paper")
    assert relation["accuracy"] is None and relation["skipped"].endswith(
        "; relation-paper-20way.pt was trained 20-way 1-shot, and the paper's 20w5s figure comes from a model trained "
        "5-shot, which no recipe here trains")  # the Relation Network has no head: nothing says it has one


def test_a_papers_20way_model_measures_the_20way_cells_when_it_is_committed(monkeypatch, tmp_path):
    """MAML's paper trains a separate 20-way model: with ``maml-paper-20way.pt`` committed, the 20-way 1-shot cell is
    its (recorded with ``recipe``); without it, the 5-way model's fixed head skips the cell and names the recipe."""
    from fslcourse.methods.maml import MAML

    protocols = [dict(n_way=5, n_shot=1), dict(n_way=20, n_shot=1), dict(n_way=20, n_shot=1, within_alphabet=True)]
    assert course_benchmark.setting_recipes("maml", protocols, "quick") == [("quick", protocols)]
    assert course_benchmark.setting_recipes("maml", protocols, "paper") == [("paper", protocols)]  # not committed
    committed = {"paper": tmp_path / "maml-paper.pt", "paper-20way": tmp_path / "maml-paper-20way.pt"}
    committed["paper-20way"].write_bytes(b"")
    monkeypatch.setattr(course_benchmark, "checkpoint_path", lambda name, recipe: committed[recipe])
    assert course_benchmark.setting_recipes("maml", protocols, "paper") == [
        ("paper", [protocols[0], protocols[2]]), ("paper-20way", [protocols[1]])]  # Lake's task is not the paper's

    torch.manual_seed(0)
    models = {r: MAML(n_way=n, hidden=4, inner_lr=0.1, test_inner_steps=1).eval() for r, n in (("paper", 5),
                                                                                               ("paper-20way", 20))}
    monkeypatch.setattr(course_benchmark, "pretrained", lambda name, profile, device: models[profile])
    monkeypatch.setattr(course_benchmark, "checkpoint_info", lambda name, profile: {"config": models[profile].config()})
    train, val, test = glyph_splits()
    run = lambda: course_benchmark.run(["maml"], SimpleNamespace(test=test), episodes=2, n_query=1, seed=0,  # noqa: E731
                                       device="cpu", generators=(), protocols=protocols[:2], profile="paper")
    records = run()
    assert [(r["protocol"]["n_way"], r.get("recipe"), r["accuracy"] is not None) for r in records] == [
        (5, None, True), (20, "paper-20way", True)]
    assert all(r["profile"] == "paper" for r in records)  # one row: "maml (paper recipe)"
    (five_shot,) = course_benchmark.run(["maml"], SimpleNamespace(test=test), episodes=2, n_query=1, seed=0,
                                        device="cpu", generators=(), protocols=[dict(n_way=20, n_shot=5)],
                                        profile="paper")  # the 20-way model is there, but trained 1-shot
    assert five_shot["accuracy"] is None and five_shot.get("recipe") is None and five_shot["skipped"].endswith(
        "; maml-paper-20way.pt was trained 20-way 1-shot, and the paper's 20w5s figure comes from a model trained "
        "5-shot, which no recipe here trains")
    committed["paper-20way"].unlink()
    records = course_benchmark.run(["maml"], SimpleNamespace(test=test), episodes=2, n_query=1, seed=0, device="cpu",
                                   generators=(), protocols=protocols[:2] + [dict(n_way=20, n_shot=5)], profile="paper")
    assert records[1]["accuracy"] is None and records[1]["skipped"].endswith(
        "the paper's model for it: python -m fslcourse train maml --recipe paper-20way")
    assert records[2]["accuracy"] is None and "paper-20way" not in records[2]["skipped"]  # a 1-shot recipe: not 5-shot


def test_on_the_vinyals_split_each_checkpoint_is_tested_with_its_papers_queries_per_class(monkeypatch):
    """The MAML, Reptile and Relation Network codes normalise each test batch with its own statistics, so the queries
    per class are part of their protocol: as many as shots (MAML, the Relation Network) or one (Reptile), for every
    row of the checkpoint (its rows stay paired); other methods keep ``--n-query``, and so does the alphabet split."""
    from fslcourse.methods.protonet import ProtoNet
    from fslcourse.methods.relation import RelationNet

    monkeypatch.setattr(course_benchmark, "SPLIT_PROTOCOL", ["vinyals"])
    torch.manual_seed(0)
    models = {"reptile": Reptile(n_way=5, hidden=4, inner_lr=1e-3, test_inner_steps=1, backend="loop",
                                 inner_optimizer="adam"),
              "relation": _loaded(RelationNet(hidden=4, aggregate="mean"), 1).eval(),
              "protonet": ProtoNet(backbone_kwargs={"hidden": 4}).eval()}
    monkeypatch.setattr(course_benchmark, "pretrained", lambda name, profile, device: models[name])
    monkeypatch.setattr(course_benchmark, "checkpoint_info", lambda name, profile: {"config": models[name].config()})
    train, val, test = glyph_splits()
    protocols = [dict(n_way=5, n_shot=1), dict(n_way=5, n_shot=2)]
    records = course_benchmark.run(["reptile", "relation", "protonet"], SimpleNamespace(test=test), episodes=2,
                                   n_query=3, seed=0, device="cpu", generators=(), protocols=protocols, profile="paper")
    queries = {(r["method"], r["protocol"]["n_shot"]): r["protocol"]["n_query"] for r in records}
    assert queries == {("reptile", 1): 1, ("reptile", 2): 1, ("reptile-inductive", 1): 1, ("reptile-inductive", 2): 1,
                       ("relation", 1): 1, ("relation", 2): 2, ("relation-batch-stats", 1): 1,
                       ("relation-batch-stats", 2): 2, ("protonet", 1): 3, ("protonet", 2): 3}
    monkeypatch.setattr(course_benchmark, "SPLIT_PROTOCOL", ["alphabet"])
    alphabet = course_benchmark.run(["reptile"], SimpleNamespace(test=test), episodes=2, n_query=3, seed=0,
                                    device="cpu", generators=(), protocols=protocols[:1], profile="paper")
    assert {r["protocol"]["n_query"] for r in alphabet} == {3}


@pytest.mark.parametrize("argv, message", [
    (["--episodes", "1"], "argument --episodes: 1 is below 2; give 2 or more"),
    (["--n-query", "0"], "argument --n-query: 0 is below 1; give 1 or more"),
    (["--profile", "paper"], "--profile paper measures checkpoints trained on the Vinyals split; add --split vinyals"),
    (["--methods", "protonet,nope"], "--methods nope is not a method; use some of"),
    (["--methods", "gnn", "--profile", "paper", "--split", "vinyals"],
     "--methods gnn: gnn-paper.pt is not there; train it with python -m fslcourse train gnn --recipe paper"),
    (["--augment", "vae,vea"], "--augment vea is not a learned generator; use some of"),
    (["--augment", "deformation"], "(deformation: an untrained control, measured by benchmarks/augmentation_sweep.py"),
    (["--split", "vinyals", "--protocols", "20w1s-alphabet"], "--protocols 20w1s-alphabet is not a protocol of the "
                                                                "vinyals split"),
    (["--episodes", "50"], "11_benchmark.json holds records measured on 200 episodes (seed 0); this run measures 50"),
    (["--n-query", "15"], "11_benchmark.json holds rows tested with 5 queries per class where this run would use 15"),
    (["--split", "vinyals", "--n-query", "15"], "holds rows tested with 5 queries per class where this run would use 15"),
])
def test_bad_options_are_refused_before_omniglot_is_loaded(argv, message, monkeypatch, capsys):
    """A typo, or a quick look that would mix other episodes into the committed table, costs one line, not a run."""
    def no_data(*a, **k):
        raise AssertionError("Omniglot was loaded before the options were checked")
    monkeypatch.setattr(course_benchmark, "load_omniglot", no_data)
    with pytest.raises(SystemExit) as exit_:
        course_benchmark.main(argv + ["--results", str(REPO_RESULTS)])  # the committed table
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_an_unexpected_error_stops_the_run_instead_of_becoming_a_skipped_row(monkeypatch):
    def broken(*a, **k):
        raise ValueError("the model returned NaN logits")
    monkeypatch.setattr(course_benchmark, "evaluate", broken)
    data = SimpleNamespace(test=glyph_splits(seed=0)[2])
    with pytest.raises(ValueError, match="NaN logits"):
        course_benchmark.run(["pixel"], data, 2, 1, 0, "cpu", [], [dict(n_way=5, n_shot=1)], "quick")


def test_the_paper_rows_are_compared_with_the_paper_rows_only(monkeypatch, capsys):
    """The committed table holds quick rows on 200 Vinyals episodes and paper rows on 1000: each run sits beside its own."""
    monkeypatch.setattr(course_benchmark, "load_omniglot", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("loaded")))
    for argv in (["--profile", "paper", "--episodes", "1000"], ["--episodes", "200"]):
        with pytest.raises(RuntimeError, match="loaded"):  # the checks passed; the data would load next
            course_benchmark.main(argv + ["--split", "vinyals", "--methods", "protonet", "--results", str(REPO_RESULTS)])
    with pytest.raises(SystemExit):
        course_benchmark.main(["--profile", "paper", "--episodes", "200", "--split", "vinyals", "--methods", "protonet",
                               "--results", str(REPO_RESULTS)])
    assert "holds records measured on 1000 episodes (seed 0); this run measures 200" in capsys.readouterr().err


def test_overwrite_replaces_every_row_of_the_split_measured_on_other_episodes(monkeypatch):
    """--overwrite switched the checks off and merged: a 100-episode run of protonet left matching's 200-episode rows
    beside it, and every later run was refused at both counts."""
    def rec(method, episodes, split="alphabet", profile="quick", n_query=5):
        return {"method": method, "episodes": episodes, "profile": profile,
                "protocol": {"n_way": 5, "n_shot": 1, "n_query": n_query, "split_protocol": split, "episode_seed": 0}}

    old = [rec("protonet", 200), rec("matching", 200), rec("matching", 1000, "vinyals", "paper"),
           {**rec("maml", None), "skipped": "cannot run"}, rec("relation", 100), rec("gnn", 100, n_query=15)]
    beside = lambda r: (r["protocol"]["split_protocol"], r["profile"]) == ("alphabet", "quick")  # noqa: E731
    monkeypatch.setattr(course_benchmark, "SPLIT_PROTOCOL", ["alphabet"])
    kept = course_benchmark.drop_other_episodes(old, 100, 0, 5, beside)  # gnn's row had 15 queries per class: it goes
    assert [(r["method"], r["episodes"]) for r in kept] == [("matching", 1000), ("maml", None), ("relation", 100)]


def test_main_with_overwrite_drops_the_splits_rows_measured_on_other_episodes(monkeypatch, tmp_path):
    """The helper is tested above; this checks that ``main --overwrite`` uses it, on its own split and profile only."""
    import json

    from fslcourse.results import save_results

    def rec(method, episodes, split="alphabet", profile="quick"):
        return {"method": method, "episodes": episodes, "profile": profile, "protocol": {
            "n_way": 5, "n_shot": 1, "n_query": 5, "split_protocol": split, "episode_seed": 0}}

    save_results(course_benchmark.NAME, [rec("matching", 200), rec("matching", 1000, "vinyals", "paper")],
                 directory=tmp_path)
    monkeypatch.setattr(course_benchmark, "load_omniglot", lambda *a, **k: SimpleNamespace(test=None))
    monkeypatch.setattr(course_benchmark, "run", lambda *a, **k: [rec("pixel", 100)])
    monkeypatch.setattr(course_benchmark, "SPLIT_PROTOCOL", ["alphabet"])
    assert course_benchmark.main(["--methods", "pixel", "--episodes", "100", "--overwrite",
                                  "--results", str(tmp_path)]) == 0
    kept = json.loads((tmp_path / f"{course_benchmark.NAME}.json").read_text())["records"]
    assert sorted((r["method"], r["episodes"]) for r in kept) == [("matching", 1000), ("pixel", 100)]
