"""benchmarks/paper_episode_count.py: it measures exactly the rows whose paper averaged more test episodes than
ours, on the paper's construction and count; bad arguments and stale references get one line before any work; its
first episodes are episode_construction's; the committed file agrees with both."""
import json
import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import episode_construction as ec  # noqa: E402
import paper_episode_count as pec  # noqa: E402
from test_episode_construction import glyph_row  # noqa: E402, F401  (the fixture)

from fslcourse.io import file_source  # noqa: E402
from fslcourse.pretrained import CHECKPOINT_DIR  # noqa: E402
from fslcourse.report import PUBLISHED, PUBLISHED_EPISODES, PUBLISHED_TEST_EPISODES, REPO_RESULTS, construction_gaps  # noqa: E402


def _no_work(monkeypatch):
    monkeypatch.setattr(pec, "load_omniglot", lambda *a, **k: pytest.fail("the work began"))


def test_every_published_row_has_its_papers_count_or_none():
    assert set(PUBLISHED_TEST_EPISODES) == set(PUBLISHED_EPISODES) <= set(PUBLISHED)
    assert all(n is None or (isinstance(n, int) and n > 0) for n in PUBLISHED_TEST_EPISODES.values())


def test_the_rows_are_those_whose_paper_used_more_episodes_each_on_its_papers_construction():
    rows = pec.paper_rows(1000)
    assert {r.method for r in rows} == {"relation-batch-stats", "reptile", "reptile-inductive"}
    assert all(r.rotations == (PUBLISHED_EPISODES[r.method],) for r in rows)
    assert {(r.name, r.recipe, r.n_way, r.method) for r in rows} == \
        {(r.name, r.recipe, r.n_way, r.method) for r in ec.ROWS if r.method in {x.method for x in rows}}
    assert {r.method for r in pec.paper_rows(600)} == {r.method for r in rows} | {"protonet"}  # MAML's 600 are not more
    assert pec.paper_rows(10000) == ()


@pytest.mark.parametrize("argv", [["--methods", "maml"], ["--methods", ""], ["--methods", "relation,,x"]])
def test_bad_methods_get_one_line_before_any_work(argv, tmp_path, monkeypatch):
    _no_work(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        pec.main(argv + ["--results", str(tmp_path)])
    message = str(exc.value)
    assert message.startswith("error: --methods") and "choose from reptile, relation" in message
    assert "\n" not in message and not (tmp_path / "paper_episode_count.json").exists()


@pytest.mark.parametrize("change, says", [
    (lambda recs: [r for r in recs if r["rotation"] != "per-episode"], "has no record of relation-batch-stats"),
    (lambda recs: [{**r, "checkpoint": {**r["checkpoint"], "sha256": "0" * 64}} for r in recs],
     "measured another checkpoint file for relation-batch-stats"),
])
def test_a_missing_or_stale_construction_record_is_refused_before_any_work(change, says, tmp_path, monkeypatch):
    records = json.loads((REPO_RESULTS / "episode_construction.json").read_text())["records"]
    built = tmp_path / "episode_construction.json"
    built.write_text(json.dumps({"name": "episode_construction", "records": change(records)}))
    monkeypatch.setattr(pec, "CONSTRUCTION", built)
    _no_work(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        pec.main(["--methods", "relation", "--results", str(tmp_path)])
    message = str(exc.value)
    assert says in message and "benchmarks/episode_construction.py --methods relation first" in message
    assert "\n" not in message and not (tmp_path / "paper_episode_count.json").exists()


@pytest.fixture()
def upright_row(glyph_row):  # noqa: F811 (the fixture imported above)
    """test_episode_construction's tiny ProtoNet posing as ``protonet-paper.pt``, measured as an upright row, and its
    glyph test split: ``(row, data)``."""
    row, data = glyph_row
    return ec.Row(row.name, row.recipe, row.n_way, ("upright",), row.method), data


def test_the_first_episodes_must_be_the_construction_records(upright_row):
    row, data = upright_row
    reference = ec.measure(row, data, "cpu", 4, reference=None, check=False)[0]
    rec = pec.measure_count(row, data, "cpu", 7, reference)
    assert rec["episodes"] == 7 and rec["episode_accuracies"][:4] == reference["episode_accuracies"]
    assert rec["rotation"] == "upright" and rec["variant"].startswith("upright episodes, 7 of them (the paper's count)")
    assert rec["accuracy"] == pytest.approx(statistics.fmean(rec["episode_accuracies"]), abs=1e-4)
    for bad in ({**reference, "episode_accuracies": reference["episode_accuracies"][::-1][:3] + [0.0]},
                {**reference, "protocol": {**reference["protocol"], "n_query": 1}},
                {**reference, "checkpoint": {**reference["checkpoint"], "sha256": "0" * 64}}):
        with pytest.raises(SystemExit) as exc:
            pec.measure_count(row, data, "cpu", 7, bad)
        message = str(exc.value)
        assert message.startswith("error: protonet (paper) 5-way 1-shot built upright: the first 4 episodes are not")
        assert "\n" not in message


# ---- the committed results file


def test_the_committed_file_holds_each_committed_rows_papers_count_and_agrees_with_the_construction_file():
    path = REPO_RESULTS / "paper_episode_count.json"
    if not path.exists():
        pytest.fail("results/paper_episode_count.json is not there; run benchmarks/paper_episode_count.py")
    records = json.loads(path.read_text())["records"]
    built = json.loads((REPO_RESULTS / "episode_construction.json").read_text())["records"]
    wanted = {(r.method, r.recipe, r.n_way) for r in pec.paper_rows()
              if (CHECKPOINT_DIR / f"{r.name}-{r.recipe}.pt").exists()}
    held = {(r["method"], r["recipe"], r["protocol"]["n_way"]) for r in records}
    assert wanted <= held, f"missing {sorted(wanted - held)}; run benchmarks/paper_episode_count.py"
    for rec in records:
        row = next(r for r in pec.paper_rows() if (r.method, r.recipe, r.n_way) ==
                   (rec["method"], rec["recipe"], rec["protocol"]["n_way"]))
        assert rec["episodes"] == len(rec["episode_accuracies"]) == PUBLISHED_TEST_EPISODES[row.method]
        assert rec["rotation"] == PUBLISHED_EPISODES[row.method] and rec["eval_seconds"] is None
        assert rec["checkpoint"]["sha256"] == file_source(CHECKPOINT_DIR / f"{row.name}-{row.recipe}.pt")["sha256"]
        assert rec["accuracy"] == pytest.approx(statistics.fmean(rec["episode_accuracies"]), abs=1e-4)
        ref = pec.construction_record(row, built)
        assert rec["protocol"] == ref["protocol"]
        assert rec["episode_accuracies"][:ref["episodes"]] == ref["episode_accuracies"]
        assert rec["ci95"] < ref["ci95"]  # more episodes: a narrower interval
    graded = construction_gaps(records)
    assert all(g["papers"] and g["episodes"] == PUBLISHED_TEST_EPISODES[g["method"]] for g in graded)


def test_a_run_writes_its_rows_on_the_papers_count_and_keeps_the_others(upright_row, tmp_path, monkeypatch):
    row, data = upright_row
    monkeypatch.setattr(pec, "paper_rows", lambda reference_episodes=1000: (row,))
    monkeypatch.setattr(pec, "METHODS", ("protonet",))
    monkeypatch.setattr(pec, "PUBLISHED_TEST_EPISODES", {"protonet": 6})
    monkeypatch.setattr(pec, "load_omniglot", lambda **k: data)
    reference = ec.measure(row, data, "cpu", 3, reference=None, check=False)[0]
    built = tmp_path / "episode_construction.json"
    built.write_text(json.dumps({"name": "episode_construction", "records": [reference]}))
    monkeypatch.setattr(pec, "CONSTRUCTION", built)
    other = {**reference, "method": "reptile"}  # another row of an earlier run
    (tmp_path / "paper_episode_count.json").write_text(json.dumps({"name": "paper_episode_count", "records": [other]}))
    assert pec.main(["--methods", "protonet", "--results", str(tmp_path)]) == 0
    written = json.loads((tmp_path / "paper_episode_count.json").read_text())["records"]
    assert [(r["method"], r["episodes"]) for r in written] == [("reptile", 3), ("protonet", 6)]
    assert written[1]["episode_accuracies"][:3] == reference["episode_accuracies"]
    pec.main(["--methods", "protonet", "--results", str(tmp_path)])  # again: its row replaced, not added
    assert len(json.loads((tmp_path / "paper_episode_count.json").read_text())["records"]) == 2
