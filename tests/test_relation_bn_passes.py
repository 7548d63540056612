"""benchmarks/relation_bn_passes.py refuses bad arguments in one line, before loading any data."""
import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import relation_bn_passes as rbp  # noqa: E402


@pytest.mark.parametrize("argv, says", [(["--recipes", "quick"], "choose from"), (["--recipes", ""], "choose from"),
                                        (["--episodes", "1"], "at least 2")])
def test_bad_arguments_get_one_line(argv, says, tmp_path):
    with pytest.raises(SystemExit) as exc:
        rbp.main(argv + ["--results", str(tmp_path)])
    message = str(exc.value)
    assert message.startswith("error:") and says in message and "\n" not in message
    assert not (tmp_path / "relation_bn_passes.json").exists()


def test_a_missing_checkpoint_names_the_command_that_trains_it(tmp_path, monkeypatch):
    pre = importlib.import_module("fslcourse.pretrained")
    monkeypatch.setattr(pre, "CHECKPOINT_DIR", tmp_path)
    with pytest.raises(SystemExit) as exc:
        rbp.main(["--recipes", "paper-20way", "--results", str(tmp_path)])
    message = str(exc.value)
    assert message.startswith("error: no 'paper-20way' checkpoint for 'relation'") and "\n" not in message
    assert "python -m fslcourse train relation --recipe paper-20way" in message
