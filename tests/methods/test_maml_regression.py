"""Sinusoid MAML: meta-gradient against learn2learn, adaptation, and the baseline's training."""
import copy

import learn2learn as l2l  # a named dependency that make setup builds: missing, these tests fail, not skip
import pytest
import torch
import torch.nn.functional as F

from fslcourse.data import SinusoidTasks
from fslcourse.methods import maml_regression
from fslcourse.training import load_or_train
from fslcourse.training.sinusoid import train_sinusoid


def test_meta_gradient_matches_learn2learn():
    torch.manual_seed(0)
    model = maml_regression.SinusoidMLP(hidden=8).double()
    ep = SinusoidTasks(seed=1).sample(4, 5, 5)
    ep = type(ep)(*(t.double() for t in (ep.support_x, ep.support_y, ep.query_x, ep.query_y,
                                         ep.amplitude, ep.phase)))
    grads, _ = maml_regression.meta_gradient(model, ep, inner_lr=0.05)
    net = copy.deepcopy(model)
    maml = l2l.algorithms.MAML(net, lr=0.05)
    losses = []
    for t in range(4):
        learner = maml.clone()
        learner.adapt(F.mse_loss(learner(ep.support_x[t]), ep.support_y[t]))
        losses.append(F.mse_loss(learner(ep.query_x[t]), ep.query_y[t]))
    ref = torch.autograd.grad(torch.stack(losses).mean(), list(net.parameters()))
    err = max((grads[k] - r).abs().max().item() for (k, _), r in zip(net.named_parameters(), ref))
    assert err <= 1e-10


def test_adaptation_lowers_support_mse_and_training_helps():
    ep = SinusoidTasks(seed=2).sample(20, 10, 10)
    models, record = train_sinusoid("quick", seed=0, steps=60, meta_batch=10, lr=3e-3)
    model, losses = models["maml_k10"], record["logs"]["maml_k10"]["loss"]
    assert record["recipes"]["maml_k10"]["n_shot"] == 10 and len(losses) == 60
    assert sum(losses[-10:]) < sum(losses[:10])
    curve = maml_regression.adaptation_mse(model, ep, lr=0.01, steps=5)
    assert curve.shape == (6, 20) and torch.isfinite(curve).all()
    path = maml_regression.adapt(model, ep.support_x[0], ep.support_y[0], lr=0.01, steps=3)
    support = [maml_regression.mse(model, p, ep.support_x[0], ep.support_y[0]).item() for p in path]
    assert support[-1] < support[0]


def test_pretrain_learns_the_mean_function():
    _, record = train_sinusoid("quick", seed=0, steps=100, meta_batch=10, lr=3e-3)
    losses = record["logs"]["pretrained"]["loss"]
    assert sum(losses[-20:]) < sum(losses[:20])


def test_training_is_deterministic():
    """The same recipe and seed give the same weights."""
    models, _ = train_sinusoid("quick", seed=0, steps=30)
    again, _ = train_sinusoid("quick", seed=0, steps=30)
    assert all(torch.equal(v, again["maml_k5"].state_dict()[k]) for k, v in models["maml_k5"].state_dict().items())


def test_committed_checkpoint_maml_beats_pretrained_after_10_steps():
    """Figure 2 of the paper with the committed models: K = 10, 10 steps, 100 test tasks, 95% CIs apart."""
    from fslcourse.evaluate import mean_ci95
    from fslcourse.pretrained import CHECKPOINT_DIR

    path = CHECKPOINT_DIR / "sinusoid-quick.pt"
    if not path.exists():
        pytest.fail(f"{path} is missing; create it with `python -m fslcourse train sinusoid`")
    sinusoid = load_or_train("sinusoid", path=path)
    models, record = sinusoid["models"], sinusoid["record"]
    assert not sinusoid["trained"] and sinusoid["source"]["file"] == "sinusoid-quick.pt"
    assert set(models) == {"maml_k5", "maml_k10", "pretrained"} and record["seed"] == 0
    episode = SinusoidTasks(seed=1000).sample(100, 10, 100)  # 100 unseen test tasks, 100 query points each
    maml_mse, maml_ci = mean_ci95(maml_regression.adaptation_mse(models["maml_k10"], episode, lr=0.01, steps=10)[10])
    base_mse, base_ci = mean_ci95(maml_regression.adaptation_mse(models["pretrained"], episode, lr=0.01, steps=10)[10])
    assert maml_mse + maml_ci < base_mse - base_ci, (maml_mse, maml_ci, base_mse, base_ci)
    assert maml_mse < 0.5 * base_mse


def test_sinusoid_metrics_start_from_the_unadapted_query_mse():
    """Step 0 of the stored curves is each model's plain query MSE on the test tasks, computed here by hand; the
    record of a run carries the curves of every model at K = 5 and K = 10."""
    from fslcourse.training.sinusoid import sinusoid_metrics

    models, record = train_sinusoid("quick", seed=0, steps=3)
    assert record["metrics"] == sinusoid_metrics(models, seed=0)
    tasks = SinusoidTasks(seed=1000)  # K = 5's tasks are drawn first, then K = 10's, as in notebook 05
    for k in (5, 10):
        episode = tasks.sample(100, k, 100)
        for name, model in models.items():
            with torch.no_grad():
                by_hand = torch.stack([(model(episode.query_x[t]) - episode.query_y[t]).pow(2).mean()
                                       for t in range(100)]).mean().item()
            curve = record["metrics"]["query_mse"][f"K={k}"][name]
            assert len(curve["mean"]) == 11 and curve["mean"][0] == pytest.approx(by_hand, rel=1e-5)


def test_a_sinusoid_run_stopped_early_is_not_recorded_as_finished():
    """It used to record 'iterations 2000' for regressors that had run one step each."""
    from fslcourse.training.loop import TrainingStopped

    with pytest.raises(TrainingStopped, match=r"^sinusoid maml_k5 stopped at step \d+ of 2000 \(max_seconds\); no "
                                              r"checkpoint was written"):
        train_sinusoid("quick", seed=0, steps=2000, max_seconds=1e-6)


def test_load_or_train_sinusoid_honours_the_recipe(tmp_path, monkeypatch):
    """load_or_train("sinusoid", "full") returned the quick regressors of sinusoid-quick.pt without a word."""
    import fslcourse.training.sinusoid as S

    asked = []
    monkeypatch.setattr(S, "train_sinusoid", lambda recipe, seed: asked.append(recipe) or ({}, {"seed": seed}))
    out = load_or_train("sinusoid", "full", path=tmp_path / "s.pt", save=False)
    assert asked == ["full"] and out["trained"]
    with pytest.raises(ValueError, match=r"^recipe 'Quick' is not known for sinusoid; use one of quick, full"):
        load_or_train("sinusoid", "Quick")
