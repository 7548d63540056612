"""The benchmarks that write committed results refuse, before any work, a run that would replace those results
with rows on other episodes or settings (a quick look), naming the two ways out."""
import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from fslcourse.report import REPO_RESULTS  # noqa: E402

QUICK_LOOKS = [
    ("matching_training_ways", ["--episodes", "100"], "holds records measured on 1000 episodes (seed 0); this run "
                                                      "measures 100"),
    ("episode_construction", ["--episodes", "100"], "holds records measured on 1000 episodes (seed 0); this run "
                                                    "measures 100"),
    ("maml_test_protocol", ["--episodes", "100"], "holds records measured on 1000 episodes"),
    ("maml_test_protocol", ["--steps", "0,3", "--queries", "1,5"], "this run measures only some, and the file would "
                                                                   "lose the rest"),
    ("oneshot_ablation", ["--episodes", "100"], "holds records measured on 600 episodes (seed 0); this run measures 100"),
    ("augmentation_sweep", ["--episodes", "50"], "holds records measured on 200 episodes"),
    ("augmentation_sweep", ["--n-generated", "10"], "holds rows with (queries per class, generated per class) (5, 5); "
                                                    "this run measures (5, 10)"),
    ("augmentation_sweep", ["--n-generated", "0"], "argument --n-generated: 0 is below 1"),
    ("oneshot_ablation", ["--copies", "-1"], "argument --copies: -1 is below 1"),
]


@pytest.mark.parametrize("script, argv, message", QUICK_LOOKS, ids=[f"{s} {' '.join(a)}" for s, a, _ in QUICK_LOOKS])
def test_a_quick_look_cannot_replace_the_committed_results(script, argv, message, monkeypatch, capsys):
    module = importlib.import_module(script)
    monkeypatch.setattr(module, "get_device", lambda *a: (_ for _ in ()).throw(AssertionError("work began")))
    monkeypatch.setattr(module, "load_omniglot", lambda *a, **k: (_ for _ in ()).throw(AssertionError("work began")))
    with pytest.raises(SystemExit) as exit_:
        module.main(argv + ["--results", str(REPO_RESULTS)])
    out = capsys.readouterr().err + str(exit_.value.code)
    assert message in out and ("--results DIR" in out or "below" in out), out


LATE_CHECKS = [
    ("diffusion_cost", ["--out", "{dir}"], "--out {dir} is a folder"),
    ("diffusion_cost", ["--episodes", "1"], "argument --episodes: 1 is below 2"),
    ("generator_quality", ["--out", "{dir}"], "--out {dir} is a folder"),
    ("widget_latency", ["--only", "02_protonet"], "--only measures some widgets; give --out PATH"),
    ("widget_latency", ["--only", "02_protonet", "--out", str(REPO_RESULTS / "widget_latency.json")],
     "--only measures some widgets; give --out PATH elsewhere"),
    ("widget_latency", ["--out", "{dir}"], "--out {dir} is a folder"),
    ("maml_vs_l2l", ["--rounds", "0"], "argument --rounds: 0 is below 1"),
    ("maml_vs_l2l", ["--out", "{dir}"], "--out {dir} is a folder"),
    ("maml_vs_l2l", ["--out", "{file}"], "--out {file} exists; pass --overwrite"),  # it replaced the record unasked
    ("course_benchmark", ["--methods", ""], "--methods is empty; name some methods"),  # '' ran every method
    ("numerics_cost", ["--out", "{dir}"], "--out {dir} is a folder"),
    ("numerics_cost", ["--methods", "protonet,nope"], "--methods nope is not a trainable method"),
    ("gpu_check", ["--steps", "0"], "--steps 0: give 1 or more"),
    ("protonet_vs_l2l", ["--episodes", "1"], "argument --episodes: 1 is below 2"),
    ("course_benchmark", ["--seed", str(2**64)], f"argument --seed: {2**64} is above {2**64 - 1}"),  # after loading
    ("diffusion_cost", ["--seed", str(2**64)], f"argument --seed: {2**64} is above {2**64 - 1}"),
    ("learning_curves", ["--method", "protonet", "--out-dir", "{file}"], "cannot be created"),
    # a file as --state-dir was a FileExistsError traceback once Omniglot had loaded
    ("learning_curves", ["--method", "protonet", "--out-dir", "{dir}", "--state-dir", "{file}"],
     "--state-dir's training state {file}/curve-protonet.state.pt cannot be created: {file} is a file"),
    ("step_cost", ["relation", "paper-20way", "0"], "argument k: 0 is below 1"),
    ("step_cost", ["relation", "nope", "3"], "method 'relation' has no recipe 'nope'"),
    ("step_cost", [], "the following arguments are required: name, recipe, k"),
]


@pytest.mark.parametrize("script, argv, message", LATE_CHECKS, ids=[f"{s} {' '.join(a)}" for s, a, _ in LATE_CHECKS])
def test_bad_options_and_unwritable_outputs_are_refused_before_the_work(script, argv, message, tmp_path, monkeypatch,
                                                                         capsys):
    """Before: an unwritable --out failed with a raw traceback after the hour of work, a bad count part-way."""
    module = importlib.import_module(script)
    for work in ("load_omniglot", "get_device", "harness", "measure"):
        if hasattr(module, work):
            monkeypatch.setattr(module, work, None)  # calling it would fail loudly: the work must not start
    monkeypatch.setattr("fslcourse.setup", None)
    (tmp_path / "a-file").write_text("")
    fill = {"dir": str(tmp_path), "file": str(tmp_path / "a-file")}
    with pytest.raises(SystemExit) as exit_:
        module.main([a.format(**fill) for a in argv])
    assert exit_.value.code == 2 and message.format(**fill) in capsys.readouterr().err


def test_mtl_ablation_names_a_missing_checkpoint_before_the_work(tmp_path, monkeypatch, capsys):
    """--curve read maml-quick.pt after training three curves: a raw FileNotFoundError minutes in."""
    store = importlib.import_module("fslcourse.pretrained")  # the module: the package exports a function so named
    module = importlib.import_module("mtl_ablation")
    (tmp_path / "mtl-theta-only-quick.pt").write_bytes(b"")
    monkeypatch.setattr(store, "CHECKPOINT_DIR", tmp_path)
    monkeypatch.setattr(module, "get_device", None)  # calling it would fail loudly: the work must not start
    with pytest.raises(SystemExit) as exit_:
        module.main(["--curve", "--results", str(tmp_path / "out")])
    assert exit_.value.code == 2 and "maml-quick.pt is not there; train it first with python -m fslcourse train " \
        "maml --recipe quick" in capsys.readouterr().err


BAD_DEVICE = [("maml_test_protocol", []), ("relation_bn_passes", []), ("matching_training_ways", []),
              ("episode_construction", []), ("paper_episode_count", []),
              ("course_benchmark", ["--methods", "pixel"]), ("augmentation_sweep", []), ("generator_quality", [])]


@pytest.mark.parametrize("script, argv", BAD_DEVICE, ids=[s for s, _ in BAD_DEVICE])
def test_a_bad_device_ends_the_run_in_one_line(script, argv, tmp_path):
    """A device that is not one was a traceback from every benchmark (the command line gave one line)."""
    module = importlib.import_module(script)
    out = ["--out", str(tmp_path / "r.json")] if script == "generator_quality" else ["--results", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_:
        module.main(argv + out + ["--device", "gpu"])
    message = str(exit_.value.code)
    assert message.startswith("error: device='gpu' is not a device") and "\n" not in message


REPLACERS = [("generator_quality", []), ("diffusion_cost", []), ("numerics_cost", []), ("widget_latency", []),
             ("learning_curves", ["--method", "protonet"])]


@pytest.mark.parametrize("script, argv", REPLACERS, ids=[s for s, _ in REPLACERS])
def test_the_committed_record_is_replaced_only_with_overwrite(script, argv, monkeypatch, capsys):
    """These five replaced their committed record by default, where the others (and the CLI) refuse unasked."""
    module = importlib.import_module(script)
    for name in ("get_device", "load_omniglot", "harness"):
        monkeypatch.setattr(module, name, None, raising=False)  # refused before any work: nothing of it is used
    with pytest.raises(SystemExit):
        module.main(argv)
    out = capsys.readouterr().err
    assert "exists; pass --overwrite to replace it" in out, out


@pytest.mark.parametrize("script", ["drawing_latency", "widgets"])
def test_help_and_unknown_arguments_never_start_the_timing(script, monkeypatch, capsys):
    """--help ran the whole benchmark, and a misspelt option was ignored."""
    module = importlib.import_module(script)
    monkeypatch.setattr(module, "main", lambda *a, **k: (_ for _ in ()).throw(AssertionError("timing began")))
    for argv, code in ((["--help"], 0), (["--bogus"], 2), (["--repeats", "0"], 2)):
        with pytest.raises(SystemExit) as exit_:
            module.cli(argv)
        assert exit_.value.code == code
