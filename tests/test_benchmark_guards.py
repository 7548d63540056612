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
