"""benchmarks/mtl_ablation.py: the learning-curve run writes its record, and bad command lines cost one line."""
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import mtl_ablation  # noqa: E402

from fslcourse.data import glyph_splits  # noqa: E402
from fslcourse.report import REPO_RESULTS  # noqa: E402


def test_the_curve_run_writes_its_record(tmp_path):
    """A two-point curve on the procedural glyphs: every stage of --curve runs, up to the record it writes."""
    train, val, test = glyph_splits(seed=0)
    out = tmp_path / "06_mtl_ablation.json"
    mtl_ablation.curve("cpu", eval_episodes=2, data=SimpleNamespace(train=train, val=val, test=test), at=(0, 4),
                       out_path=out)
    rec = json.loads(out.read_text())["learning_curve"]
    assert set(rec["curves"]) == {"mtl", "mtl-no-ht", "maml"}
    assert [p["tasks"] for p in rec["curves"]["mtl"]["points"]][:1] == [0] and "filters" in rec["training"]
    assert rec["curves"]["maml"]["points"][-1]["note"].startswith("the committed maml-quick checkpoint")


@pytest.mark.parametrize("argv, message", [
    ([], "say what to do: --train, --ablation and/or --curve"),
    (["--ablation", "--episodes", "1"], "argument --episodes: 1 is below 2; give 2 or more"),
    (["--ablation", "--episodes", "50"], "holds records measured on 600 episodes (seed 0); this run measures 50"),
])
def test_bad_command_lines_are_refused_before_any_work(argv, message, monkeypatch, capsys):
    monkeypatch.setattr(mtl_ablation, "get_device", lambda *a: (_ for _ in ()).throw(AssertionError("work began")))
    with pytest.raises(SystemExit) as exit_:
        mtl_ablation.main(argv + ["--results", str(REPO_RESULTS)])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("train, missing, refused", [
    (False, "mtl-theta-only", True),   # --curve alone needs phase 1's checkpoint
    (True, "mtl-theta-only", False),   # --train makes it first
    (True, "maml", True),              # --train never makes maml's
])
def test_curve_needs_checkpoints_that_train_does_not_make(train, missing, refused, monkeypatch, tmp_path, capsys):
    real = mtl_ablation.checkpoint_path
    monkeypatch.setattr(mtl_ablation, "checkpoint_path",
                        lambda name, profile="quick": tmp_path / "absent.pt" if name == missing else real(name, profile))
    monkeypatch.setattr(mtl_ablation, "get_device", lambda *a: (_ for _ in ()).throw(RuntimeError("work began")))
    argv = ["--curve", "--results", str(tmp_path)] + (["--train"] if train else [])
    if refused:
        with pytest.raises(SystemExit):
            mtl_ablation.main(argv)
        assert "absent.pt is not there; train it first" in capsys.readouterr().err
    else:
        with pytest.raises(RuntimeError, match="work began"):  # the checks passed
            mtl_ablation.main(argv)
