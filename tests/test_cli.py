"""python -m fslcourse: evaluate writes a complete JSON record; bad input gets a clear error."""
import json
import subprocess
import sys

import pytest


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "fslcourse", *args], capture_output=True, text=True, **kw)


def test_evaluate_pixel_json(omniglot, tmp_path):
    out = tmp_path / "r.json"
    p = run("evaluate", "pixel", "--n-way", "5", "--n-shot", "1", "--n-query", "5", "--episodes", "50",
            "--seed", "0", "--json", str(out))
    assert p.returncode == 0, p.stderr
    rec = json.loads(out.read_text())
    for key in ("method", "protocol", "accuracy", "ci95", "episodes", "train_seconds", "eval_seconds",
                "config", "seed", "versions", "device"):
        assert key in rec
    assert rec["protocol"]["n_way"] == 5 and rec["episodes"] == 50
    assert 20 < rec["accuracy"] < 80 and rec["versions"]["torch"]
    assert "5-way 1-shot" in p.stdout


@pytest.mark.parametrize("args, message", [
    (("evaluate", "nope"), "method 'nope' is not registered"),
    (("train", "pixel"), "no trainable parameters"),
])
def test_errors_are_one_clear_line(args, message):
    p = run(*args)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr


def test_impossible_protocol(omniglot):
    p = run("evaluate", "pixel", "--n-way", "5000", "--episodes", "2")
    assert p.returncode == 2 and "n_way=5000 but the 'test' split has 2636 classes" in p.stderr
