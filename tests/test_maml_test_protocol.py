"""benchmarks/maml_test_protocol.py refuses bad arguments in one line, before loading any data."""
import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import maml_test_protocol as mtp  # noqa: E402


def test_counts_are_parsed_sorted_and_unique():
    assert mtp.parse_counts("10,0,3,3", "--steps", 0) == (0, 3, 10)


@pytest.mark.parametrize("argv, says", [(["--steps", "1,x"], "whole numbers"), (["--steps", "-1"], "below 0"),
                                        (["--queries", "0,5"], "below 1"), (["--methods", "reptile"], "choose from"),
                                        (["--episodes", "1"], "at least 2")])
def test_bad_arguments_get_one_line(argv, says, tmp_path):
    with pytest.raises(SystemExit) as exc:
        mtp.main(argv + ["--results", str(tmp_path)])
    message = str(exc.value)
    assert message.startswith("error:") and says in message and "\n" not in message
    assert not (tmp_path / "maml_test_protocol.json").exists()


def test_a_missing_checkpoint_names_the_command_that_trains_it(tmp_path, monkeypatch):
    pre = importlib.import_module("fslcourse.pretrained")  # the module (the package exports a function of that name)
    monkeypatch.setattr(pre, "CHECKPOINT_DIR", tmp_path)
    with pytest.raises(SystemExit) as exc:
        mtp.main(["--methods", "fomaml", "--results", str(tmp_path)])
    message = str(exc.value)
    assert message.startswith("error: no 'paper' checkpoint for 'fomaml'") and "\n" not in message
    assert "python -m fslcourse train fomaml --recipe paper" in message
    assert not (tmp_path / "maml_test_protocol.json").exists()


def test_more_queries_than_drawings_are_refused_before_the_work(tmp_path, monkeypatch):
    """--queries 1,30 measured every other setting (minutes) before the sampler's ValueError traceback at 30."""
    monkeypatch.setattr(mtp, "get_device", lambda *a: pytest.fail("the work began"))
    with pytest.raises(SystemExit) as exc:
        mtp.main(["--queries", "1,30", "--results", str(tmp_path)])
    assert str(exc.value) == ("error: --queries '1,30': 30 queries and the 1 support drawing per class need 31 "
                              "drawings, but Omniglot has 20 of each character; use counts up to 19")
