"""benchmarks/episode_construction.py: bad arguments get one line before any work; its records say how their
episodes were built and its "classes" rows are the course benchmark's; the committed file agrees with the benchmark."""
import importlib
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import episode_construction as ec  # noqa: E402

from fslcourse.data import ImageSplit, glyph_splits  # noqa: E402
from fslcourse.io import file_source  # noqa: E402
from fslcourse.methods.protonet import ProtoNet  # noqa: E402
from fslcourse.pretrained import CHECKPOINT_DIR  # noqa: E402
from fslcourse.report import REPO_RESULTS  # noqa: E402

ALL = ("classes", "per-class", "per-episode", "upright")


def _no_work(monkeypatch):
    monkeypatch.setattr(ec, "load_omniglot", lambda *a, **k: pytest.fail("the work began"))


@pytest.mark.parametrize("argv, says", [(["--methods", "reptil"], "choose from"), (["--methods", ""], "choose from"),
                                        (["--methods", ",,"], "choose from"), (["--episodes", "1"], "at least 2")])
def test_bad_arguments_get_one_line(argv, says, tmp_path, monkeypatch):
    _no_work(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        ec.main(argv + ["--results", str(tmp_path)])
    message = str(exc.value)
    assert message.startswith("error:") and says in message and "\n" not in message
    assert not (tmp_path / "episode_construction.json").exists()


def test_checkpoints_not_committed_are_skipped_with_a_line_and_none_is_an_error(tmp_path, monkeypatch, capsys):
    pre = importlib.import_module("fslcourse.pretrained")  # the module (the package exports a function of that name)
    monkeypatch.setattr(pre, "CHECKPOINT_DIR", tmp_path)
    _no_work(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        ec.main(["--methods", "maml,fomaml", "--results", str(tmp_path)])
    message = str(exc.value)
    assert message.startswith("error: no checkpoint of --methods 'maml,fomaml' is committed") and "\n" not in message
    assert "python -m fslcourse train fomaml --recipe paper-20way" in message
    assert "python -m fslcourse train maml --recipe paper" in message
    (tmp_path / "maml-paper.pt").write_bytes((CHECKPOINT_DIR / "maml-paper.pt").read_bytes())  # maml's is committed
    monkeypatch.setattr(ec, "load_omniglot", lambda *a, **k: (_ for _ in ()).throw(SystemExit("stopped")))
    with pytest.raises(SystemExit, match="stopped"):
        ec.main(["--methods", "maml,fomaml", "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert "fomaml (paper-20way) 20-way 1-shot: skipped (no 'paper-20way' checkpoint for 'fomaml'" in out
    assert not any(line.startswith("maml (paper)") for line in out.splitlines())  # maml's is committed


@pytest.mark.parametrize("change, says", [
    (lambda recs: [], "has no record of maml (paper) 5-way 1-shot"),
    (lambda recs: [{**r, "checkpoint": {**(r.get("checkpoint") or {}), "sha256": "0" * 64}} for r in recs],
     "measured another checkpoint file for maml (paper) 5-way 1-shot"),
])
def test_a_benchmark_without_the_reference_is_refused_before_any_work(change, says, tmp_path, monkeypatch):
    """The "classes" episodes are checked against the benchmark's records: a retrained checkpoint whose benchmark
    row is stale is refused first, not after minutes of measuring."""
    records = json.loads((REPO_RESULTS / "11_benchmark.json").read_text())["records"]
    bench = tmp_path / "11_benchmark.json"
    bench.write_text(json.dumps({"name": "11_benchmark", "records": change(records)}))
    monkeypatch.setattr(ec, "BENCHMARK", bench)
    _no_work(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        ec.main(["--methods", "maml", "--results", str(tmp_path)])
    message = str(exc.value)
    assert says in message and "benchmarks/course_benchmark.py --split vinyals --profile paper --methods maml" in message
    assert "\n" not in message and not (tmp_path / "episode_construction.json").exists()


@pytest.fixture()
def glyph_row(monkeypatch):
    """A tiny ProtoNet posing as ``protonet-paper.pt`` (its file name and hash), and a glyph test split whose classes
    are the four turns of 30 characters: ``(row, data)``."""
    torch.manual_seed(0)
    model = ProtoNet(backbone_kwargs={"hidden": 8})
    model.checkpoint_source = file_source(CHECKPOINT_DIR / "protonet-paper.pt")
    ckpt = {"config": model.config(), "seed": 0, "profile": "paper", "train_seconds": 1.0}
    monkeypatch.setattr(ec, "load_method", lambda path, device, expect: (model, ckpt))
    test = glyph_splits(seed=0)[2]
    turned = ImageSplit("test", test.images, test.base_names, test.alphabets, (0, 1, 2, 3), "vinyals")
    return ec.Row("protonet", "paper", 5, ALL, "protonet"), SimpleNamespace(test=turned)


def test_each_construction_is_a_record_that_says_so(glyph_row):
    row, data = glyph_row
    records = ec.measure(row, data, "cpu", 4, reference=None, check=False)
    classes = records[0]
    assert [r["rotation"] for r in records] == list(ALL) and "rotation" not in classes["protocol"]
    assert "vs_classes" not in classes
    for rec in records[1:]:
        assert rec["protocol"] == {**classes["protocol"], "rotation": rec["rotation"]}
        assert rec["episodes_sha256"] != classes["episodes_sha256"]  # other episodes
        assert rec["vs_classes"] == pytest.approx(rec["accuracy"] - classes["accuracy"], abs=1e-12)
        assert rec["vs_classes_ci95"] == pytest.approx(math.hypot(rec["ci95"], classes["ci95"]), abs=1e-12)
    for rec in records:
        assert rec["eval_seconds"] is None and rec["profile"] == "paper" and rec["recipe"] == "paper"
        assert rec["protocol"]["n_query"] == 5 and rec["episodes"] == 4 and rec["variant"].startswith(rec["rotation"])
    printed = ec.table(records)
    assert all(f"{r['accuracy']:7.2f} ± {r['ci95']:.2f}" in printed for r in records)
    assert f"{records[3]['vs_classes']:+6.2f} ± {records[3]['vs_classes_ci95']:.2f}" in printed


def test_the_classes_episodes_must_be_the_benchmarks(glyph_row):
    """The same test as the benchmark's record passes (also on its first episodes); another accuracy, other episodes
    or no record stops the run with one line."""
    row, data = glyph_row
    row = ec.Row(row.name, row.recipe, row.n_way, ("classes", "upright"), row.method)
    ref = ec.measure(row, data, "cpu", 4, reference=None, check=False)[0]
    again = ec.measure(row, data, "cpu", 4, reference=ref)
    assert again[0]["episode_accuracies"] == ref["episode_accuracies"]
    longer = ec.measure(row, data, "cpu", 6, reference=None, check=False)[0]
    ec.measure(row, data, "cpu", 4, reference=longer)  # a look on fewer episodes: its first ones
    for bad, says in ((None, "has no record of protonet (paper) 5-way 1-shot"),
                      ({**ref, "accuracy": ref["accuracy"] + 1e-6}, "scored"),
                      ({**ref, "episodes_sha256": "0" * 64}, "scored"),
                      ({**longer, "episode_accuracies": longer["episode_accuracies"][::-1]}, "first 4 episodes"),
                      ({**ref, "protocol": {**ref["protocol"], "n_query": 1}}, "is not the benchmark's")):
        with pytest.raises(SystemExit) as exc:
            ec.measure(row, data, "cpu", 4, reference=bad)
        message = str(exc.value)
        assert message.startswith("error: the 'classes' episodes are not the course benchmark's test") \
            and says in message and "\n" not in message


def test_a_run_writes_its_rows_and_keeps_the_others(glyph_row, tmp_path, monkeypatch):
    row, data = glyph_row
    monkeypatch.setattr(ec, "ROWS", (row,))
    monkeypatch.setattr(ec, "load_omniglot", lambda **k: data)
    reference = ec.measure(row, data, "cpu", 3, reference=None, check=False)[0]
    bench = tmp_path / "11_benchmark.json"
    bench.write_text(json.dumps({"name": "11_benchmark", "records": [reference]}))
    monkeypatch.setattr(ec, "BENCHMARK", bench)
    other = {**reference, "method": "maml", "recipe": "paper"}  # another row of an earlier run, on the same episodes
    (tmp_path / "episode_construction.json").write_text(json.dumps({"name": "episode_construction", "records": [other]}))
    assert ec.main(["--methods", "protonet", "--episodes", "3", "--results", str(tmp_path)]) == 0
    written = json.loads((tmp_path / "episode_construction.json").read_text())["records"]
    assert [(r["method"], r["rotation"]) for r in written] == [("maml", "classes")] + [("protonet", c) for c in ALL]
    with pytest.raises(SystemExit, match="holds records measured on 3 episodes"):  # a look never mixes in
        ec.main(["--methods", "protonet", "--episodes", "2", "--results", str(tmp_path)])


# ---- the committed results file


def _committed():
    path = REPO_RESULTS / "episode_construction.json"
    if not path.exists():
        pytest.fail("results/episode_construction.json is not there; run benchmarks/episode_construction.py")
    return json.loads(path.read_text())["records"]


def test_the_committed_file_holds_every_committed_checkpoints_rows():
    held = {(r["method"], r["recipe"], r["protocol"]["n_way"], r["rotation"]) for r in _committed()}
    wanted = {(row.method, row.recipe, row.n_way, c) for row in ec.ROWS for c in row.rotations
              if (CHECKPOINT_DIR / f"{row.name}-{row.recipe}.pt").exists()}
    assert wanted <= held, f"missing {sorted(wanted - held)}; re-run benchmarks/episode_construction.py"
    assert {r["episodes"] for r in _committed()} == {1000}


def test_the_committed_classes_rows_are_the_benchmarks_records():
    """Episode for episode: the construction's "classes" rows measured the course benchmark's test (same checkpoint
    file, protocol, episodes and accuracies), so the differences are from the benchmark's figures."""
    bench = json.loads((REPO_RESULTS / "11_benchmark.json").read_text())["records"]
    records = _committed()
    for row in ec.ROWS:
        mine = {r["rotation"]: r for r in records if r["method"] == row.method and r["recipe"] == row.recipe
                and r["protocol"]["n_way"] == row.n_way}
        if not mine:
            continue
        own = mine["classes"]
        ref = next(r for r in bench if r["method"] == row.method and r.get("profile") == "paper"
                   and (r.get("recipe") or "paper") == row.recipe and r["protocol"].get("split_protocol") == "vinyals"
                   and r["protocol"]["n_way"] == row.n_way and r["protocol"]["n_shot"] == 1 and r["episodes"])
        assert own["checkpoint"]["sha256"] == ref["checkpoint"]["sha256"] and own["protocol"] == ref["protocol"]
        assert own["episodes"] == ref["episodes"] == 1000
        assert ref.get("episodes_sha256") in (None, own["episodes_sha256"])  # records from before digests have none
        assert own["episode_accuracies"] == ref["episode_accuracies"]
        assert abs(own["accuracy"] - ref["accuracy"]) <= 1e-9, (row, own["accuracy"], ref["accuracy"])
        assert own["config"] == ref["config"] and own["profile"] == ref["profile"] == "paper"
        for rotation, rec in mine.items():
            assert rec["eval_seconds"] is None and rec["checkpoint"]["sha256"] == own["checkpoint"]["sha256"]
            if rotation == "classes":
                continue
            assert rec["protocol"] == {**own["protocol"], "rotation": rotation}
            assert rec["episodes_sha256"] != own["episodes_sha256"]
            assert abs(rec["vs_classes"] - (rec["accuracy"] - own["accuracy"])) <= 1e-9
            assert abs(rec["vs_classes_ci95"] - math.hypot(rec["ci95"], own["ci95"])) <= 1e-9
