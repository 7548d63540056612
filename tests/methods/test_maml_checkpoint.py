"""The committed MAML-family checkpoints still give the meta-test accuracy recorded when they were saved.

Same protocol as ``tests/methods/test_pretrained_checkpoints.py``: re-evaluate the
first episodes of the recorded fixed meta-test episodes and compare with the
recorded per-episode accuracies and the recorded mean ± CI.
"""
import pytest

from fslcourse.evaluate import evaluate, mean_ci95
from fslcourse.pretrained import checkpoint_info, checkpoint_path, pretrained

N_EPISODES = 40


@pytest.mark.parametrize("name", ["maml", "fomaml", "reptile"])
def test_checkpoint_reproduces_recorded_accuracy(name, omniglot):
    if not checkpoint_path(name).exists():
        pytest.fail(f"{checkpoint_path(name)} is missing; create it with "
                    f"`python benchmarks/train_maml_family.py {name}`")
    info = checkpoint_info(name)
    m, proto = info["metrics"], info["metrics"]["protocol"]
    assert info["profile"] == "quick" and info["seed"] == 0 and info["train_seconds"] > 0
    assert info["config"] and proto["split"] == "test" and (proto["n_way"], proto["n_shot"]) == (5, 1)
    recorded = m["test_episode_accuracies"]
    assert len(recorded) == proto["n_episodes"]
    assert abs(mean_ci95(recorded)[0] - m["test_accuracy"]) < 1e-9
    model = pretrained(name, device="cpu")
    res = evaluate(model, omniglot.test, proto["n_way"], proto["n_shot"], proto["n_query"], N_EPISODES,
                   seed=proto["seed"], device="cpu")
    want, _ = mean_ci95(recorded[:N_EPISODES])
    assert abs(res.accuracy - want) <= 0.5, f"first {N_EPISODES} episodes: {res.accuracy:.2f}% now, {want:.2f}% recorded"
    assert abs(res.accuracy - m["test_accuracy"]) <= max(m["test_ci95"] * (len(recorded) / N_EPISODES) ** 0.5, 1.0)


# What the committed checkpoints reach (5-way 1-shot, recorded protocol), not the targets:
# issue 4 asks for >= 97% from maml-quick.pt; the committed one (3000 meta-steps, 32 filters) records
# 92.1% +- 1.1%. These floors catch a regression or a checkpoint swapped for a worse one.
FLOORS = {"maml": 91.0, "fomaml": 77.0, "reptile": 49.0}


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_checkpoint_accuracy_floor(name):
    if not checkpoint_path(name).exists():
        pytest.fail(f"{checkpoint_path(name)} is missing")
    m = checkpoint_info(name)["metrics"]
    assert m["test_accuracy"] >= FLOORS[name], f"{name}-quick 5-way 1-shot is {m['test_accuracy']:.1f}%"
