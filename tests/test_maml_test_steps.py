"""benchmarks/maml_test_steps.py refuses bad arguments in one line, before loading any data."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import maml_test_steps as mts  # noqa: E402


def test_steps_are_parsed_sorted_and_unique():
    assert mts.parse_steps("10,0,3,3") == (0, 3, 10)


@pytest.mark.parametrize("argv, says", [(["--steps", "1,x"], "whole numbers"), (["--steps", "-1"], "negative"),
                                        (["--methods", "reptile"], "choose from"), (["--episodes", "1"], "at least 2")])
def test_bad_arguments_get_one_line(argv, says, tmp_path):
    with pytest.raises(SystemExit) as exc:
        mts.main(argv + ["--results", str(tmp_path)])
    message = str(exc.value)
    assert message.startswith("error:") and says in message and "\n" not in message
    assert not (tmp_path / "maml_test_steps.json").exists()
