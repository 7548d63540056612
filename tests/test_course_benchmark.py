"""benchmarks/course_benchmark.py: a paper checkpoint of Reptile is measured transductively and not, on the same
episodes, as two rows whose records say which BatchNorm statistics the queries had."""
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import course_benchmark  # noqa: E402

from fslcourse.data import glyph_splits  # noqa: E402
from fslcourse.methods.reptile import Reptile  # noqa: E402


def test_reptile_paper_rows_are_transductive_and_inductive(monkeypatch):
    torch.manual_seed(0)
    model = Reptile(n_way=5, hidden=4, inner_lr=1e-3, test_inner_steps=2, backend="loop", inner_optimizer="adam")
    monkeypatch.setattr(course_benchmark, "pretrained", lambda name, profile, device: model)
    monkeypatch.setattr(course_benchmark, "checkpoint_info", lambda name, profile: {"config": model.config()})
    train, val, test = glyph_splits()
    records = course_benchmark.run(["reptile"], SimpleNamespace(test=test), episodes=3, n_query=2, seed=0,
                                   device="cpu", generators=(), protocols=[dict(n_way=5, n_shot=1)], profile="paper")
    assert [r["method"] for r in records] == ["reptile", "reptile-inductive"]
    assert [r["protocol"]["batch_norm"] for r in records] == ["batch", "support+query"]
    assert [r["config"]["transductive"] for r in records] == [True, False]  # each row's config says how it ran
    assert records[0]["protocol"] == {**records[1]["protocol"], "batch_norm": "batch"}  # the same episodes
    assert model.transductive  # the model is left as it was loaded
    quick = course_benchmark.run(["reptile"], SimpleNamespace(test=test), episodes=2, n_query=2, seed=0,
                                 device="cpu", generators=(), protocols=[dict(n_way=5, n_shot=1)], profile="quick")
    assert [r["method"] for r in quick] == ["reptile"]  # the quick table keeps one row per method
