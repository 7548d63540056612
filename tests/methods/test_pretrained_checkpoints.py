"""The committed quick-profile checkpoints still give the meta-test accuracy recorded when they were saved.

Each checkpoint's ``metrics`` hold the 5-way 1-shot accuracy on fixed meta-test
episodes (seed 0) and the per-episode accuracies. To stay fast, the test
re-evaluates the *first* ``n`` of those same episodes and compares with the
recorded accuracies of exactly those episodes, and with the recorded overall
mean ± CI.
"""
import pytest

from fslcourse.evaluate import evaluate, mean_ci95
from fslcourse.pretrained import checkpoint_info, checkpoint_path, pretrained

N_EPISODES = {"protonet": 100, "finetune": 30, "maml": 40, "fomaml": 40, "reptile": 40, "matching": 100,
              "relation": 100, "gnn": 40, "metagan": 40, "parameter-prediction": 40, "cosine-prototypes": 40,
              "hallucinating-protonet": 40}  # MTL's four: tests/methods/test_mtl.py
HOW_TO_TRAIN = {name: f"python -m fslcourse train {name} --recipe quick" for name in N_EPISODES}


@pytest.mark.parametrize("name", list(N_EPISODES))
def test_checkpoint_reproduces_recorded_accuracy(name, omniglot):
    if not checkpoint_path(name).exists():
        pytest.fail(f"{checkpoint_path(name)} is missing; create it with `{HOW_TO_TRAIN[name]}`")
    info = checkpoint_info(name)
    m, proto = info["metrics"], info["metrics"]["protocol"]
    assert info["profile"] == "quick" and info["seed"] == 0 and info["train_seconds"] > 0
    assert info["config"] and proto["split"] == "test" and (proto["n_way"], proto["n_shot"]) == (5, 1)
    recorded = m["test_episode_accuracies"]
    assert len(recorded) == proto["n_episodes"]
    assert abs(mean_ci95(recorded)[0] - m["test_accuracy"]) < 1e-9
    n = min(N_EPISODES[name], len(recorded))
    model = pretrained(name, device="cpu")
    res = evaluate(model, omniglot.test, proto["n_way"], proto["n_shot"], proto["n_query"], n, seed=proto["seed"],
                   device="cpu")
    want, _ = mean_ci95(recorded[:n])
    # episode by episode, so that opposite flips cannot cancel: another CPU's rounding may flip a near-tie
    # query or two, nothing more (one query of 5-way with n_query queries per class moves an episode 100/(5 n_query))
    one_query = 100 / (proto["n_way"] * proto["n_query"])
    moved = sum(abs(a - b) for a, b in zip(res.episode_accuracies, recorded[:n]))
    assert moved <= 2 * one_query + 0.01, (f"first {n} episodes: {res.accuracy:.2f}% now, {want:.2f}% recorded; "
                                           f"{moved / one_query:.0f} queries answered differently")
    assert abs(res.accuracy - m["test_accuracy"]) <= max(m["test_ci95"] * (len(recorded) / n) ** 0.5, 1.0)
