"""benchmarks/numerics_cost.py: interleaved rounds, the median ratio, and one set of weights per side."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import numerics_cost  # noqa: E402


def fake_measure(costs: dict, calls: list, digest=lambda numerics, n: numerics):
    def measure(method, numerics, steps):
        calls.append(numerics)
        n = sum(c == numerics for c in calls)  # this side's n-th run
        return {"numerics": numerics, "cpu_seconds_per_step": costs[numerics][n - 1], "sha256": digest(numerics, n)}
    return measure


def test_rounds_alternate_and_the_median_ratio_is_reported(monkeypatch, tmp_path):
    calls = []
    costs = {"native": [1.0, 1.0, 1.0], "portable": [2.0, 9.0, 2.5]}  # one outlier round
    monkeypatch.setattr(numerics_cost, "measure", fake_measure(costs, calls))
    out = tmp_path / "cost.json"
    assert numerics_cost.main(["--methods", "protonet", "--rounds", "3", "--out", str(out)]) == 0
    assert calls == ["native", "portable", "portable", "native", "native", "portable"]
    row = json.loads(out.read_text())["rows"][0]
    assert row["slowdowns"] == [2.0, 9.0, 2.5] and row["slowdown"] == 2.5 and row["rounds"] == 3
    assert row["portable"]["cpu_seconds_per_step"] / row["native"]["cpu_seconds_per_step"] == row["slowdown"]


def test_rounds_that_train_other_weights_are_refused(monkeypatch, tmp_path):
    costs = {"native": [1.0, 1.0], "portable": [2.0, 2.0]}
    monkeypatch.setattr(numerics_cost, "measure", fake_measure(costs, [], lambda numerics, n: f"{numerics}{n}"))
    with pytest.raises(SystemExit, match="trained different weights"):
        numerics_cost.main(["--methods", "protonet", "--rounds", "2", "--out", str(tmp_path / "cost.json")])
    assert not (tmp_path / "cost.json").exists()


def test_no_rounds_is_refused(capsys, tmp_path):
    with pytest.raises(SystemExit):
        numerics_cost.main(["--rounds", "0", "--out", str(tmp_path / "cost.json")])
    assert "--rounds 0 is too few" in capsys.readouterr().err
