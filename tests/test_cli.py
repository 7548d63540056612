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
    assert rec["checkpoint"] is None  # pixel has no weights; a trained method's record names its file and hash


def test_evaluate_json_names_the_checkpoint_and_its_hash(omniglot, tmp_path):
    import hashlib

    from fslcourse.pretrained import checkpoint_path

    out = tmp_path / "r.json"
    p = run("evaluate", "fomaml", "--episodes", "3", "--n-query", "2", "--json", str(out))
    assert p.returncode == 0, p.stderr
    rec = json.loads(out.read_text())
    path = checkpoint_path("fomaml")
    from fslcourse.pretrained import checkpoint_info

    info = checkpoint_info("fomaml")
    assert rec["checkpoint"] == {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                 "steps": info["steps"], "cpu_seconds": info["cpu_seconds"],
                                 "train_episodes": {k: info["recipe"][k] for k in ("n_way", "n_shot", "n_query", "meta_batch")},
                                 "selection": f"best meta-validation accuracy (step {info['metrics']['best_step']})",
                                 "width": info["config"]["hidden"], "split": info.get("split_protocol")}
    assert rec["protocol"]["batch_norm"] == "batch"  # MAML's Conv-4 normalises each test batch (transductive)
    assert len(rec["episode_accuracies"]) == 3
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


def test_train_writes_a_checkpoint_with_its_measured_accuracy(omniglot, tmp_path, capsys, monkeypatch):
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
    said = capsys.readouterr().out  # the file written and the accuracy it records, not only "saved"
    assert (f"saved {out}; its meta-test accuracy, recorded in it: {metrics['test_accuracy']:.1f} ± "
            f"{metrics['test_ci95']:.1f}% (5-way 1-shot, 200 episodes, ± the 95% CI)") in said
    before = out.read_bytes()
    assert main(["train", "test-cli-tiny", "--out", str(out)]) == 2
    assert "tiny.pt exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["train", "test-cli-tiny", "--recipe", "paper", "--out", str(tmp_path / "x.pt")]) == 2
    assert "has no recipe 'paper'; use one of quick" in capsys.readouterr().err
    assert len(metrics["test_episode_accuracies"]) == 200 and 0 < metrics["test_accuracy"] < 100
    assert [s["numerics"] for s in ckpt["log"]["sittings"]] == ["native"]  # how it rounded, for a resume
    import fslcourse.numerics

    chosen = []  # --numerics reaches use_numerics before any work (a real switch needs a fresh process)
    monkeypatch.setattr(fslcourse.numerics, "use_numerics", lambda numerics: chosen.append(numerics) or "native")
    assert main(["train", "test-cli-tiny", "--numerics", "portable", "--out", str(out)]) == 2  # out exists
    assert chosen == ["portable"]


@pytest.mark.parametrize("argv, says", [
    (["train", "protonet", "--steps", "2"], "steps=2 changes protonet's quick recipe, so this run would not make "
                                            "protonet-quick.pt"),
    (["train", "relation", "--recipe", "paper", "--seed", "3", "--state-every", "5"],
     "seed=3 changes relation's paper recipe"),
    (["train", "vae", "--seed", "5"], "seed=5 changes vae's quick recipe, so this run would not make vae-quick.pt")])
def test_a_changed_recipe_never_writes_the_recipes_own_checkpoint(argv, says, capsys, monkeypatch, tmp_path):
    """`train NAME --steps 2` (a smoke test) wrote checkpoints/NAME-quick.pt, the file `train NAME --recipe quick`
    makes, whenever it did not exist yet (a new method's), and only said "saved its checkpoint". It is refused
    before any work, even with --overwrite, and names --out; --state-every alone changes nothing trained."""
    import importlib

    import fslcourse.training.api as api
    import fslcourse.training.generators as G
    from fslcourse.cli import main

    pre = importlib.import_module("fslcourse.pretrained")  # the module (the package exports a function of that name)
    for module in (pre, G):  # an empty package folder: no "exists" refusal first, and nothing written there
        monkeypatch.setattr(module, "CHECKPOINT_DIR", tmp_path)

    assert main(["train", "gan", "--recipe", "lake", "--seed", "1"]) == 2  # a recipe the family lacks: that, first
    assert "gan has no recipe 'lake'; use one of quick, full, paper" in capsys.readouterr().err

    def no_work(*args, **kwargs):  # without the refusal the run would start (hours for a paper recipe): fail at once
        raise AssertionError("the run started")

    monkeypatch.setattr(importlib.import_module("fslcourse.data"), "load_omniglot", no_work)
    monkeypatch.setattr(api, "train_generator", no_work)
    assert main([*argv, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert says in err and "give --out PATH (out=) a file of its own" in err
    assert list(tmp_path.iterdir()) == []
    package_file = str(tmp_path / "protonet-quick.pt")  # --out naming the package's file itself: refused too
    assert main(["train", "protonet", "--steps", "2", "--out", package_file, "--overwrite"]) == 2
    assert "steps=2 changes protonet's quick recipe" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


def test_evaluate_val_records_the_split_and_the_alphabets_left_out(omniglot, tmp_path, capsys):
    """A meta-validation run says so in its record; within an alphabet, the record lists the alphabets that
    have fewer than n_way classes (Tagalog: 17 characters x 4 rotations = 68 < 100)."""
    from fslcourse.cli import main

    out = tmp_path / "val.json"
    assert main(["evaluate", "pixel", "--split", "val", "--n-way", "100", "--n-query", "1", "--episodes", "2",
                 "--within-alphabet", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["protocol"]["split"] == "val" and rec["protocol"]["within_alphabet"]
    assert rec["alphabets_left_out"] == ["Tagalog"]
    assert "left out 1 alphabet(s) with fewer than 100 classes: Tagalog" in capsys.readouterr().err


def test_a_bad_json_path_fails_before_the_evaluation(tmp_path, monkeypatch, capsys):
    import importlib

    from fslcourse.cli import main

    def must_not_run(*args, **kw):
        raise AssertionError("the evaluation ran before the --json path was checked")

    monkeypatch.setattr(importlib.import_module("fslcourse.evaluate"), "evaluate", must_not_run)
    monkeypatch.setattr(importlib.import_module("fslcourse.data"), "load_omniglot", must_not_run)
    assert main(["evaluate", "pixel", "--episodes", "2", "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"--json {tmp_path} is a folder" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "f").write_text("x")
    assert main(["evaluate", "pixel", "--episodes", "2", "--json", str(tmp_path / "f" / "r.json")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "f" / "r.json") in err and ".tmp" not in err


@pytest.mark.parametrize("exc, code, message", [
    (RuntimeError("boom\nsecond line"), 1, "error: RuntimeError: boom (the full traceback is in "),
    (KeyError("weights"), 1, "error: KeyError: 'weights' (the full traceback is in "),
    (KeyboardInterrupt(), 130, "interrupted (Ctrl-C)"),
    (ValueError("n_way=0 must be a positive integer"), 2, "error: n_way=0 must be a positive integer"),
])
def test_unexpected_errors_are_one_line_with_the_traceback_in_a_file(tmp_path, monkeypatch, capsys, exc, code,
                                                                      message):
    import tempfile

    from fslcourse import cli

    def fails(args):
        raise exc

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(cli, "_evaluate", fails)
    assert cli.main(["evaluate", "pixel"]) == code
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    logs = list(tmp_path.glob("fslcourse-error-*.txt"))
    if code == 1:
        assert len(logs) == 1 and str(logs[0]) in err
        assert "Traceback (most recent call last)" in logs[0].read_text() and "in fails" in logs[0].read_text()
    else:
        assert not logs


def test_a_bad_device_is_a_clean_error(monkeypatch):
    monkeypatch.setenv("FSLCOURSE_DEVICE", "banana")
    p = run("evaluate", "pixel", "--episodes", "2")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "FSLCOURSE_DEVICE='banana' is not a device; unset FSLCOURSE_DEVICE or set it to cpu" in p.stderr


def test_evaluate_uses_the_split_a_checkpoint_was_trained_on(omniglot, tmp_path, monkeypatch):
    """A checkpoint trained on the Vinyals split is evaluated on the Vinyals split (never on the alphabet split,
    whose meta-test characters it trained on); the record says so."""
    import importlib

    import torch

    from fslcourse.methods import ProtoNet
    from fslcourse.pretrained import save_method

    pre = importlib.import_module("fslcourse.pretrained")  # the module (the package exports a function of that name)
    torch.manual_seed(0)
    monkeypatch.setattr(pre, "CHECKPOINT_DIR", tmp_path)
    save_method(ProtoNet(backbone_kwargs={"hidden": 8}), tmp_path / "protonet-paper.pt", seed=0, profile="paper",
                train_seconds=0.0, split_protocol="vinyals")
    from fslcourse.cli import main

    out = tmp_path / "r.json"
    assert main(["evaluate", "protonet", "--profile", "paper", "--episodes", "2", "--n-query", "1", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["protocol"]["split_protocol"] == "vinyals" and rec["checkpoint"]["split"] == "vinyals"


def test_evaluate_refuses_a_checkpoint_of_another_recipe(tmp_path, monkeypatch, capsys):
    """A lake model copied to protonet-quick.pt was measured and recorded as 'quick' (pretrained() refused it)."""
    import importlib

    from fslcourse.methods import ProtoNet
    from fslcourse.pretrained import save_method

    pre = importlib.import_module("fslcourse.pretrained")
    monkeypatch.setattr(pre, "CHECKPOINT_DIR", tmp_path)
    save_method(ProtoNet(backbone_kwargs={"hidden": 8}), tmp_path / "protonet-quick.pt", seed=0, profile="lake",
                train_seconds=0.0)
    from fslcourse.cli import main

    out = tmp_path / "r.json"
    assert main(["evaluate", "protonet", "--episodes", "2", "--json", str(out)]) != 0
    err = capsys.readouterr().err
    assert "holds protonet trained with recipe 'lake', not 'quick'" in err and not out.exists()


def test_an_existing_result_file_is_replaced_only_with_overwrite(tmp_path, capsys, monkeypatch):
    """evaluate --json and report --out never replace an existing file unasked (a notebook's multi-record file
    became one 2-episode record); the refusal comes before any work."""
    import importlib

    from fslcourse.cli import main

    def must_not_run(*args, **kw):
        raise AssertionError("the evaluation ran before the --json path was checked")

    kept = tmp_path / "02_protonet.json"
    before = ('{"name": "02_protonet", "records": [{"method": "pixel", "protocol": {"n_way": 5, "n_shot": 1}, '
              '"accuracy": 40.0}]}')  # one record: report refuses a folder of empty record files
    kept.write_text(before)
    monkeypatch.setattr(importlib.import_module("fslcourse.evaluate"), "evaluate", must_not_run)
    assert main(["evaluate", "pixel", "--episodes", "2", "--json", str(kept)]) == 2
    assert f"--json {kept} exists; pass --overwrite" in capsys.readouterr().err
    assert main(["report", "--results", str(tmp_path), "--out", str(kept)]) == 2
    assert f"--out {kept} exists; pass --overwrite" in capsys.readouterr().err
    assert kept.read_text() == before
    assert main(["report", "--results", str(tmp_path), "--out", str(kept), "--overwrite"]) == 0
    assert kept.read_text() != before


@pytest.mark.parametrize("family", ["vae", "gan", "diffusion", "sinusoid"])
def test_an_unknown_generator_recipe_is_a_one_line_error(family, tmp_path, capsys, monkeypatch):
    import importlib

    from fslcourse.cli import main

    def must_not_run(*args, **kw):
        raise AssertionError("data loaded before the recipe was checked")

    monkeypatch.setattr(importlib.import_module("fslcourse.data"), "load_omniglot", must_not_run)
    assert main(["train", family, "--recipe", "bogus", "--out", str(tmp_path / "g.pt")]) == 2
    err = capsys.readouterr().err
    assert f"{family} has no recipe 'bogus'; use one of quick" in err and len(err.strip().splitlines()) == 1


def test_a_meaningless_evaluation_is_refused(tmp_path, capsys):
    """1-way episodes score 100% for every method; --n-generated without --augment was silently ignored; an
    empty results folder gave a table of headers."""
    from fslcourse.cli import main

    assert main(["evaluate", "pixel", "--n-way", "1", "--episodes", "2"]) == 2
    assert "n_way=1 (--n-way): a 1-way episode has one possible answer" in capsys.readouterr().err
    assert main(["evaluate", "pixel", "--episodes", "2", "--n-generated", "50"]) == 2
    assert "--n-generated sets how many generated examples --augment adds" in capsys.readouterr().err
    assert main(["report", "--results", str(tmp_path)]) == 2
    assert "holds no result files" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["report", "--results", str(tmp_path / "afile")]) == 2
    assert "is a file; pass the folder" in capsys.readouterr().err


def test_a_recipe_the_method_does_not_have_is_named_not_sent_to_train(capsys):
    """`--profile lake` for maml said 'create it with train maml --recipe lake', a command that fails too."""
    from fslcourse.cli import main

    assert main(["evaluate", "maml", "--profile", "lake", "--episodes", "2"]) == 2
    err = capsys.readouterr().err
    assert "'maml' has no 'lake' recipe, so no maml-lake.pt; use one of quick" in err and "train maml" not in err


@pytest.mark.parametrize("argv, option, says", [
    (["evaluate", "pixel", "--episodes", "1"], "--episodes", "1 is below 2; give 2 or more"),
    (["evaluate", "pixel", "--seed", "-1"], "--seed", "-1 is below 0; give 0 or more"),
    (["evaluate", "pixel", "--augment", "vae", "--generation-seed", "-3"], "--generation-seed", "-3 is below 0"),
    (["evaluate", "pixel", "--n-query", "two"], "--n-query", "'two' is not a whole number"),
    (["train", "protonet", "--steps", "0"], "--steps", "0 is below 1"),
    # above torch's range: a one-line error only after loading the data (--seed), or torch's "Overflow when
    # unpacking long long" after loading model and data (--generation-seed)
    (["evaluate", "pixel", "--seed", str(2**64)], "--seed", f"{2**64} is above {2**64 - 1}; give 0 to {2**64 - 1}"),
    (["evaluate", "pixel", "--augment", "copy-noise", "--generation-seed", str(2**64)], "--generation-seed",
     f"{2**64} is above {2**64 - 1}"),
    (["train", "protonet", "--seed", str(2**70)], "--seed", f"{2**70} is above {2**64 - 1}")])
def test_numbers_on_the_command_line_are_checked_by_their_option(argv, option, says, capsys):
    """The message names the option the user typed (it named the library's parameter, n_episodes=0), and a
    negative seed is refused for evaluate as it was for train."""
    from fslcourse.cli import main

    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert f"argument {option}: {says}" in capsys.readouterr().err


def test_a_profile_for_a_method_without_weights_is_refused(capsys):
    """evaluate pixel --profile lake recorded a 'lake' profile for a method that has no weights."""
    from fslcourse.cli import main

    assert main(["evaluate", "pixel", "--profile", "lake", "--episodes", "2"]) == 2
    assert "pixel has no trained weights, so --profile lake does not apply" in capsys.readouterr().err


def test_evaluate_augment_never_trains_a_generator(tmp_path, capsys, monkeypatch):
    """evaluate matching --augment vae-feature trained a feature VAE for matching's backbone and saved it over the
    committed vae-quick.pt; a profile no generator family has was a KeyError after loading model and data."""
    import importlib

    from fslcourse.cli import main
    from fslcourse.pretrained import CHECKPOINT_DIR

    committed = {p.name: p.read_bytes() for p in CHECKPOINT_DIR.glob("vae-*.pt")}

    def no_training(*args, **kw):
        raise AssertionError("evaluate --augment started training a generator")

    vae = importlib.import_module("fslcourse.generative.vae")
    monkeypatch.setattr(importlib.import_module("fslcourse.training.generators"), "train_vae", no_training)
    monkeypatch.setattr(vae.FeatureVAE, "__init__", no_training)
    assert main(["evaluate", "matching", "--augment", "vae-feature", "--episodes", "2"]) == 2
    err = capsys.readouterr().err
    assert "has no feature VAE for backbone" in err and "augment protonet or finetune" in err
    assert {p.name: p.read_bytes() for p in CHECKPOINT_DIR.glob("vae-*.pt")} == committed

    def must_not_load(*args, **kw):
        raise AssertionError("model or data loaded before the generator's recipe was checked")

    monkeypatch.setattr(importlib.import_module("fslcourse.pretrained"), "pretrained", must_not_load)
    monkeypatch.setattr(importlib.import_module("fslcourse.data"), "load_omniglot", must_not_load)
    assert main(["evaluate", "protonet", "--profile", "lake", "--augment", "vae", "--episodes", "2"]) == 2
    assert "--augment vae has no 'lake' generator (vae recipes: quick, full, paper)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "protonet", "--augment", "nosuch"])
    err = capsys.readouterr().err  # argparse's own wording, which Python versions quote differently
    assert "invalid choice" in err and "nosuch" in err and "deformation-gan" in err and "vae-feature" in err


def test_evaluate_augment_takes_an_untrained_control(tmp_path, capsys):
    """The controls are what a learned generator must beat, and evaluate --augment refused them ('invalid choice');
    a control needs no checkpoint, so any --profile of the method goes."""
    from fslcourse.cli import main

    out = tmp_path / "control.json"
    assert main(["evaluate", "protonet", "--augment", "copy-noise", "--n-generated", "1", "--episodes", "3",
                 "--json", str(out)]) == 0
    said = capsys.readouterr().out
    rec = json.loads(out.read_text())
    assert rec["method"] == "protonet+copy-noise" and rec["augment"]["space"] == "pixel"
    assert rec["augment"]["generator"] == "copy-noise" and len(rec["by_n_generated"]) == 1
    assert "copy-noise" in said


def test_train_names_everything_it_can_train(capsys, monkeypatch):
    """An unknown name listed methods only (not vae, gan, diffusion, sinusoid); train sinusoid --device was ignored;
    the help named three of the five generator families."""
    import importlib

    from fslcourse.cli import _parser, main
    from fslcourse.training.generators import FAMILIES

    def must_not_load(*args, **kw):
        raise AssertionError("data loaded before the name was checked")

    monkeypatch.setattr(importlib.import_module("fslcourse.data"), "load_omniglot", must_not_load)
    assert main(["train", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "'nosuch' is neither a registered method nor a generator family" in err
    assert "protonet, relation, reptile" in err and f"; {', '.join(FAMILIES)}; sinusoid" in err  # tests may add methods
    assert "registers once fslcourse/methods/__init__.py imports its module" in err  # where a new method is missing
    assert main(["train", "sinusoid", "--device", "cpu"]) == 2
    assert "--device: for methods only; sinusoid trains its whole named recipe on the CPU" in capsys.readouterr().err
    train_help = next(a for a in _parser()._subparsers._group_actions[0].choices["train"]._actions
                      if a.dest == "name").help
    assert f"({', '.join(FAMILIES)})" in train_help


def test_predict_refuses_a_profile_for_a_method_without_weights(tmp_path):
    """predict --method pixel --profile lake ran and ignored --profile; evaluate refused the same."""
    from fslcourse.predict import predict_folders

    with pytest.raises(ValueError, match="^pixel has no trained weights, so --profile lake does not apply"):
        predict_folders(tmp_path, [tmp_path], "pixel", profile="lake")


@pytest.mark.parametrize("state_step, then", [
    (1200, "Continue from step 1200 with the same command and --resume."),
    (None, "No training state was written: the same command starts again.")])
def test_an_interrupted_train_says_whether_resume_can_continue_it(monkeypatch, capsys, tmp_path, state_step, then):
    """It always said 'Continue with the same command and --resume', which fails when no state was written."""
    from types import SimpleNamespace

    import fslcourse.training.api as api
    from fslcourse.cli import main

    monkeypatch.setattr(api, "train", lambda *a, **k: (None, SimpleNamespace(
        stopped="interrupted", steps=1234, state_step=state_step)))
    assert main(["train", "protonet", "--out", str(tmp_path / "p.pt")]) == 3
    assert capsys.readouterr().err.strip() == ("protonet: stopped at step 1234 (interrupted); no checkpoint was "
                                               f"written. {then}")


def test_evaluate_a_paper_checkpoint_tests_as_its_paper_and_says_the_protocol(omniglot, tmp_path, capsys):
    """`evaluate maml --profile paper` printed 97.3 with 15 queries per class beside a table's 99.0 (the paper's test,
    one query per class: MAML normalises each test batch with its own statistics), and did not say so."""
    from fslcourse.cli import main

    out = tmp_path / "r.json"
    assert main(["evaluate", "maml", "--profile", "paper", "--episodes", "2", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "1 query per class, as the paper's test of maml: it normalises each test batch" in captured.err
    assert "maml (paper checkpoint; vinyals split, test classes; 1 query per class): 5-way 1-shot:" in captured.out
    assert "± is the 95% CI" in captured.out and json.loads(out.read_text())["protocol"]["n_query"] == 1
    assert main(["evaluate", "maml", "--profile", "paper", "--episodes", "2", "--n-query", "3"]) == 0  # asked: kept
    captured = capsys.readouterr()
    assert "3 queries per class" in captured.out and "paper's test" not in captured.err
    assert main(["evaluate", "pixel", "--episodes", "2"]) == 0  # no paper test: 15, as before
    assert "15 queries per class" in capsys.readouterr().out


def test_evaluate_measures_the_papers_other_test_columns(omniglot, capsys):
    """relation-batch-stats and reptile-inductive, rows of the papers' table, were 'not registered' for evaluate."""
    from fslcourse.cli import main

    for row in ("relation-batch-stats", "reptile-inductive"):
        assert main(["evaluate", row, "--profile", "paper", "--episodes", "2"]) == 0, row
        assert f"{row} (paper checkpoint; vinyals split" in capsys.readouterr().out
    assert main(["evaluate", "protonet-inductive", "--episodes", "2"]) != 0
    assert "protonet has no transductive switch" in capsys.readouterr().err


def test_evaluate_a_head_of_other_ways_names_the_way_out(capsys):
    """A 5-way head asked for 20-way episodes said 'build the method with n_way=20 or use zero_head=True'."""
    from fslcourse.cli import main

    assert main(["evaluate", "fomaml", "--profile", "paper", "--n-way", "20", "--episodes", "2"]) != 0
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0, err
    assert "fomaml-paper.pt's head has 5 outputs (trained 5-way): evaluate --n-way 5" in err
    assert "--profile paper-20way" in err  # committed: its profile; a recipe not trained yet: its train command


def test_evaluate_help_shows_its_defaults():
    p = run("evaluate", "--help")
    assert p.returncode == 0 and "(default: 5)" in p.stdout and "(default: 1000;" in p.stdout
    assert "(default: None)" not in p.stdout  # a default the help states itself is not stated twice


def test_evaluate_append_builds_a_results_file_one_setting_at_a_time(omniglot, tmp_path, capsys, monkeypatch):
    """07_vae_augmentation_600.json holds two records (1-shot, 5-shot) that no command could put together."""
    import importlib

    from fslcourse.cli import main

    evaluate_module = importlib.import_module("fslcourse.evaluate")  # the package exports a function of that name
    out = tmp_path / "several.json"
    base = ["evaluate", "pixel", "--episodes", "2", "--n-query", "1", "--json", str(out), "--append",
            "--variant", "two episodes"]
    for shots in ("1", "2"):
        assert main(base + ["--n-shot", shots]) == 0
    data = json.loads(out.read_text())
    assert data["name"] == "several" and [r["protocol"]["n_shot"] for r in data["records"]] == [1, 2]
    assert {r["variant"] for r in data["records"]} == {"two episodes"}
    capsys.readouterr()
    monkeypatch.setattr(evaluate_module, "evaluate", lambda *a, **k: pytest.fail("evaluated a refused measurement"))
    assert main(base + ["--n-shot", "1"]) != 0  # refused before any work, the file as it was
    assert "already holds this measurement (record 1); pass --overwrite" in capsys.readouterr().err
    assert json.loads(out.read_text()) == data
    monkeypatch.undo()
    assert main(base + ["--n-shot", "1", "--overwrite"]) == 0
    assert [r["protocol"]["n_shot"] for r in json.loads(out.read_text())["records"]] == [2, 1]
    one = tmp_path / "one.json"
    assert main(["evaluate", "pixel", "--episodes", "2", "--json", str(one)]) == 0
    assert main(["evaluate", "pixel", "--episodes", "2", "--json", str(one), "--append"]) != 0
    assert "holds no list of records" in capsys.readouterr().err
    assert main(["evaluate", "pixel", "--episodes", "2", "--variant", "x"]) != 0
    assert "--variant is for the record --json writes" in capsys.readouterr().err


def test_evaluate_append_keeps_other_checkpoints_and_generated_counts_apart(omniglot, tmp_path, capsys):
    """The same test of another checkpoint (--profile), and an augmented run with other generated counts, are other
    measurements: --append adds them (it refused them, and --overwrite replaced the wrong record)."""
    from fslcourse.cli import main

    out = tmp_path / "r.json"
    base = ["evaluate", "protonet", "--episodes", "2", "--n-query", "2", "--json", str(out), "--append"]
    assert main(base) == 0 and main(base + ["--profile", "lake"]) == 0
    augment = base + ["--augment", "vae-feature"]
    assert main(augment) == 0 and main(augment + ["--n-generated", "10"]) == 0
    assert main(augment + ["--generation-seed", "1"]) == 0
    records = json.loads(out.read_text())["records"]
    assert [(r["method"], r["profile"], (r.get("augment") or {}).get("generation_seed"),
             [x["n_generated"] for x in r.get("by_n_generated", [])]) for r in records] == [
        ("protonet", "quick", None, []), ("protonet", "lake", None, []), ("protonet+vae-feature", "quick", 0, [5]),
        ("protonet+vae-feature", "quick", 0, [10]), ("protonet+vae-feature", "quick", 1, [5])]
    capsys.readouterr()
    assert main(augment + ["--n-generated", "10"]) != 0  # the same measurement: refused before any work
    assert "already holds this measurement (record 4)" in capsys.readouterr().err
    assert main(base + ["--profile", "lake", "--overwrite"]) == 0  # replaces the lake record, not the quick one
    assert [(r["method"], r["profile"]) for r in json.loads(out.read_text())["records"]][:2] == [
        ("protonet", "quick"), ("protonet+vae-feature", "quick")]


def test_evaluate_a_head_of_other_ways_says_whether_to_train_resume_or_load(tmp_path, monkeypatch, capsys):
    """The way out names the 20-way model's profile once it is committed, its resume command while it trains
    across sittings (a fresh `train` would be refused), and its train command before it starts."""
    import importlib
    import shutil

    from fslcourse.cli import main
    from fslcourse.pretrained import checkpoint_path

    paper = checkpoint_path("fomaml", "paper")
    pre = importlib.import_module("fslcourse.pretrained")
    monkeypatch.setattr(pre, "CHECKPOINT_DIR", tmp_path)
    shutil.copy(paper, tmp_path / paper.name)
    argv = ["evaluate", "fomaml", "--profile", "paper", "--n-way", "20", "--episodes", "2"]
    assert main(argv) != 0
    assert "or train the 20-way 1-shot model first: python -m fslcourse train fomaml --recipe paper-20way" in \
        capsys.readouterr().err
    (tmp_path / "fomaml-paper-20way.state.pt").write_bytes(b"")
    assert main(argv) != 0
    assert ("or finish the 20-way 1-shot model, training across sittings: python -m fslcourse train fomaml --recipe "
            "paper-20way --resume") in capsys.readouterr().err


def test_evaluate_augment_refuses_what_its_paired_protocol_cannot_measure(tmp_path, capsys, monkeypatch):
    """--augment --within-alphabet was silently measured across alphabets (its record said within_alphabet false);
    --augment on a Vinyals checkpoint loaded the data and then named a library call, load_omniglot(split=...)."""
    import importlib

    from fslcourse.cli import main

    def must_not_load(*args, **kw):
        raise AssertionError("data loaded before the refusal")

    monkeypatch.setattr(importlib.import_module("fslcourse.data"), "load_omniglot", must_not_load)
    out = tmp_path / "r.json"
    assert main(["evaluate", "pixel", "--augment", "copy-noise", "--within-alphabet", "--episodes", "2",
                 "--json", str(out)]) == 2
    assert "--within-alphabet: --augment's paired episodes are drawn across alphabets only" in capsys.readouterr().err
    assert main(["evaluate", "protonet", "--profile", "paper", "--augment", "copy-noise", "--episodes", "2"]) == 2
    err = capsys.readouterr().err
    assert "protonet-paper.pt was trained on the Vinyals split" in err and "(e.g. --profile quick)" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_an_empty_path_and_a_folder_as_report_out_are_refused(tmp_path, capsys, monkeypatch):
    """predict --out "" (an unset $DIR) wrote its three files into the current folder and report --results "" read
    it; report --out FOLDER said 'exists; pass --overwrite', which then failed on the folder."""
    from fslcourse.cli import main

    monkeypatch.chdir(tmp_path)
    for argv, option in ((["predict", "--support", str(tmp_path), "--query", str(tmp_path), "--out", ""], "--out"),
                         (["report", "--results", ""], "--results"), (["evaluate", "pixel", "--json", " "], "--json")):
        with pytest.raises(SystemExit):
            main(argv)
        assert f"argument {option}: an empty path; give a file or folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert main(["report", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"the report file {tmp_path} is a folder; give a file path" in err and "--overwrite" not in err


def test_evaluate_augment_refuses_an_episode_shape_the_head_cannot_run_before_loading_data(capsys, monkeypatch):
    """evaluate --augment skipped the head check plain evaluate runs: GNN's fixed 5-way head was refused only after
    Omniglot had loaded, naming a Python call (GNN(n_way=20)) instead of the command that runs."""
    import importlib

    from fslcourse.cli import main

    def must_not_load(*args, **kw):
        raise AssertionError("data loaded before the refusal")

    monkeypatch.setattr(importlib.import_module("fslcourse.data"), "load_omniglot", must_not_load)
    assert main(["evaluate", "gnn", "--n-way", "20", "--augment", "copy-noise", "--episodes", "2"]) == 2
    err = capsys.readouterr().err
    assert "gnn-quick.pt's head has 5 outputs (trained 5-way): evaluate --n-way 5" in err
    assert len(err.strip().splitlines()) == 1
