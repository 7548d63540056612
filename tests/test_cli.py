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


def test_train_writes_a_checkpoint_with_its_measured_accuracy(omniglot, tmp_path, capsys):
    """`train NAME --recipe quick` runs the method's recipe and saves a checkpoint that records its meta-test
    accuracy; it refuses to overwrite the file without --overwrite, before any work."""
    import torch
    from torch import nn

    from fslcourse.cli import main
    from fslcourse.methods.base import FewShotClassifier, prototypes, register
    from fslcourse.pretrained import load_method
    from fslcourse.recipe import Recipe

    @register("test-cli-tiny")
    class Tiny(FewShotClassifier):
        RECIPES = {"quick": Recipe(n_way=5, n_shot=1, n_query=2, steps=3, lr=1e-3, val_every=3, val_episodes=5,
                                   model={"dim": 8})}

        def __init__(self, dim: int = 8):
            super().__init__()
            self.dim = dim
            self.embed = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(49, dim))

        def config(self):
            return {"dim": self.dim}

        def predict(self, support_x, support_y, query_x):
            n_way = self.check_support(support_x, support_y, query_x)
            return -torch.cdist(self.embed(query_x), prototypes(self.embed(support_x), support_y, n_way))

    out = tmp_path / "tiny.pt"
    assert main(["train", "test-cli-tiny", "--recipe", "quick", "--out", str(out)]) == 0
    model, ckpt = load_method(out)
    metrics = ckpt["metrics"]
    assert ckpt["config"] == {"dim": 8} and ckpt["seed"] == 0 and ckpt["train_seconds"] > 0
    assert ckpt["recipe"] == Tiny.RECIPES["quick"].as_dict() and ckpt["steps"] == 3 and ckpt["cpu_seconds"] > 0
    assert metrics["protocol"] == {"split": "test", "n_way": 5, "n_shot": 1, "n_query": 5,
                                   "n_episodes": 200, "seed": 0}
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["train", "test-cli-tiny", "--out", str(out)]) == 2
    assert "tiny.pt exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["train", "test-cli-tiny", "--recipe", "paper", "--out", str(tmp_path / "x.pt")]) == 2
    assert "has no recipe 'paper'; use one of quick" in capsys.readouterr().err
    assert len(metrics["test_episode_accuracies"]) == 200 and 0 < metrics["test_accuracy"] < 100
