"""benchmarks/matching_training_ways.py refuses bad arguments and missing checkpoints in one line, before any work."""
import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import matching_training_ways as mtw  # noqa: E402


def test_too_few_episodes_get_one_line(tmp_path):
    with pytest.raises(SystemExit) as exc:
        mtw.main(["--episodes", "1", "--results", str(tmp_path)])
    message = str(exc.value)
    assert message.startswith("error:") and "at least 2" in message and "\n" not in message
    assert not (tmp_path / "matching_training_ways.json").exists()


def test_a_missing_checkpoint_names_the_command_that_trains_it(tmp_path, monkeypatch):
    pre = importlib.import_module("fslcourse.pretrained")  # the module (the package exports a function of that name)
    monkeypatch.setattr(pre, "CHECKPOINT_DIR", tmp_path)
    (tmp_path / "matching-paper.pt").write_bytes(b"")  # the 20-way model is there, the 5-way one is not
    with pytest.raises(SystemExit) as exc:
        mtw.main(["--results", str(tmp_path)])
    message = str(exc.value)
    assert message.startswith("error: no 'paper-5way' checkpoint for 'matching'") and "\n" not in message
    assert "python -m fslcourse train matching --recipe paper-5way" in message
    assert not (tmp_path / "matching_training_ways.json").exists()
