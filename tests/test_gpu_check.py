"""benchmarks/gpu_check.py, the GPU profile's check, dry-run on the CPU: full recipes run, the record is complete.

The dry run (``--device cpu --steps 2 --data glyphs``) runs once, in a subprocess, for the whole module, on one
method of each kind of training step (episodic, meta-gradient) and one generator of each kind (a single player, two
players): every full recipe already runs two steps in ``tests/training/test_recipes.py``, so running all of them
here too would only double a minute and a half of the test suite.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ORIGINAL_ENV = dict(os.environ)
ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
sys.path.insert(0, str(SCRIPT.parent))

import gpu_check  # noqa: E402


def test_importing_the_script_leaves_the_environment_alone():
    """The notebooks run in kernels that inherit pytest's environment: MPLBACKEND=Agg there would hide figures."""
    assert os.environ.get("MPLBACKEND") != "Agg" or "MPLBACKEND" in ORIGINAL_ENV


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=900)


DRY_RUN = ("protonet", "maml", "vae", "gan")


def test_by_default_every_method_and_generator_is_checked():
    _, args = gpu_check.parse_args([])
    want = gpu_check.trainable_methods() + list(gpu_check.GENERATORS)
    assert {"protonet", "maml", "mtl", "mtl-theta-only", "reptile", "diffusion"} <= set(want)
    assert args.names == want and set(DRY_RUN) <= set(want)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "record" / "gpu_check.json"
    proc = run_script("--device", "cpu", "--steps", "2", "--data", "glyphs", "--methods", ",".join(DRY_RUN),
                      "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def test_dry_run_has_an_entry_per_method_and_generator_asked_for(dry_run):
    record, _ = dry_run
    assert [e["name"] for e in record["training"]] == list(DRY_RUN)
    assert record["complete"] and record["failed"] == [] and record["device"] == "cpu"
    assert record["device_name"] == "cpu" and record["versions"]["torch"]


def test_every_entry_ran_two_steps_and_measured_them(dry_run):
    record, _ = dry_run
    for e in record["training"]:
        assert e["error"] is None, e
        assert e["steps"] == 2 and e["stopped"] == "steps" and e["recipe"] == "full", e["name"]
        assert isinstance(e["loss_fell"], bool) and e["loss_key"] in ("loss", "loss_d"), e["name"]
        assert e["peak_memory_mb"] is None  # a CPU has no peak-memory counter
        for key in ("projected_full_recipe_seconds", "steps_per_second", "examples_per_second", "seconds"):
            assert isinstance(e[key], float) and math.isfinite(e[key]) and e[key] > 0, (e["name"], key, e[key])
        assert e["full_recipe_steps"] >= 10_000  # the full recipe's budget, not the capped one
        assert e["projected_full_recipe_seconds"] == pytest.approx(e["full_recipe_steps"] / e["steps_per_second"])
        assert "projection" in e["projection_note"]


def test_omniglot_parts_are_skipped_with_a_reason_and_the_table_says_projected(dry_run):
    record, stdout = dry_run
    for part in ("agreement", "widgets"):
        assert "Omniglot" in record[part]["skipped"]
    assert "PROJECTED full" in stdout and "skipped" in stdout


def test_an_unwritable_out_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exc:
        gpu_check.main(["--device", "cpu", "--data", "glyphs", "--out", str(blocker / "gpu_check.json")])
    assert exc.value.code == 2 and "is a file, not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu_check.main(["--device", "cpu", "--data", "glyphs", "--out", str(tmp_path)])
    assert "is a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu_check.main(["--methods", "protonet,nope", "--out", str(tmp_path / "x.json")])
    assert "nope" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [blocker]


def test_one_failing_entry_does_not_stop_the_others(tmp_path, monkeypatch, capsys):
    real = gpu_check.train_method

    def flaky(name, *args):
        if name == "protonet":
            raise RuntimeError("CUDA error: an illegal memory access\nsecond line")
        return real(name, *args)

    monkeypatch.setattr(gpu_check, "train_method", flaky)
    out = tmp_path / "gpu_check.json"
    rc = gpu_check.main(["--device", "cpu", "--steps", "1", "--data", "glyphs", "--methods", "protonet,relation",
                         "--parts", "train", "--out", str(out)])
    record = json.loads(out.read_text())
    assert rc == 1 and record["failed"] == ["training:protonet"]
    bad, good = record["training"]
    assert bad["error"] == {"type": "RuntimeError", "message": "CUDA error: an illegal memory access"}
    assert good["name"] == "relation" and good["error"] is None and good["steps"] == 1
    assert "FAILED (1): training:protonet" in capsys.readouterr().err


def test_checkpoint_agreement_cpu_against_cpu_on_omniglot(tmp_path):
    from fslcourse.data import find_omniglot

    if find_omniglot() is None:
        if os.environ.get("CI"):
            pytest.fail("Omniglot not found in CI: FSLCOURSE_DATA must point at ../shared/data")
        pytest.skip("Omniglot not found; set FSLCOURSE_DATA")
    out = tmp_path / "gpu_check.json"
    proc = run_script("--device", "cpu", "--methods", "protonet", "--parts", "agreement", "--episodes", "2",
                      "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    agreement = json.loads(out.read_text())["agreement"]
    assert agreement["protocol"] == {"split": "test", "n_way": 5, "n_shot": 1, "n_query": 5, "episodes": 2, "seed": 0}
    (e,) = agreement["entries"]
    assert e["name"] == "protonet" and e["error"] is None and e["queries"] == 2 * 5 * 5
    assert e["max_abs_diff"] == 0 and e["argmax_agrees"] and e["within_tolerance"] and e["tolerance"] == 1e-3


def test_the_agreement_check_sees_a_device_that_disagrees(monkeypatch):
    """CI has no GPU, so its CPU-against-CPU run always agrees: here the 'device' model is off by 2e-3 of the logit
    scale on every logit and swaps one query's answer, and the check must say both."""
    import torch

    class Fixed:  # a model whose logits are given, so that the two sides can be made to differ
        needs_grad_at_test = False

        def __init__(self, logits):
            self.logits = logits

        def predict(self, support_x, support_y, query_x):
            return self.logits.clone()

    base = torch.tensor([[5.0, 1.0, 0.0], [0.0, 4.0, 1.0], [1.0, 0.0, 3.0]])
    moved = base + 2e-3 * 5.0
    moved[2] = torch.tensor([3.5, 0.0, 3.0])  # this query's answer changes: class 0 instead of 2
    from fslcourse.data import glyph_splits

    made = iter([Fixed(base), Fixed(moved)])  # check_agreement loads the CPU model first, then the device's
    monkeypatch.setattr(gpu_check, "pretrained", lambda name, device: next(made))
    ep = gpu_check.EpisodeSampler(glyph_splits(seed=0)[2], 3, 1, 1, seed=0).sample()
    entry = gpu_check.check_agreement("protonet", [ep], torch.device("cpu"), tolerance=1e-3)
    assert entry["error"] is None and entry["within_tolerance"] is False and entry["argmax_disagreements"] == 1
    assert entry["max_abs_diff"] > 1e-3 * entry["logit_scale"] and not entry["argmax_agrees"]


def test_the_adaptation_stepper_check_renders_on_the_cpu():
    """The GPU check built the stepper with k_shot, an argument renamed n_shot: it reported the widget broken."""
    result = gpu_check.check_widget("adaptation_stepper", None, "cpu")
    assert result["rendered"], result
