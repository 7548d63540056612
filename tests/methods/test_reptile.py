"""Reptile's meta-update against its formula, computed by hand with plain autograd."""
import copy

import pytest
import torch
import torch.nn.functional as F

from fslcourse.data import EpisodeSampler, glyph_splits
from fslcourse.io import atomic_torch_save
from fslcourse.methods import get_method
from fslcourse.methods.reptile import Reptile
from fslcourse.pretrained import load_method, save_method


def _setup(steps=3, seed=0, backend="vmap"):
    train, _, _ = glyph_splits()
    batch = EpisodeSampler(train, n_way=3, n_shot=1, n_query=2, seed=5).sample_batch(2)
    batch.support_x, batch.query_x = batch.support_x.double(), batch.query_x.double()
    torch.manual_seed(seed)
    return Reptile(n_way=3, hidden=4, inner_lr=0.1, inner_steps=steps, backend=backend).double(), batch


def _sgd_by_hand(model, ep, steps, lr):
    """φ̃ of one task: plain SGD on a copy of the network, one full-batch step at a time."""
    net = copy.deepcopy(model.net)
    x, y = torch.cat([ep.support_x, ep.query_x]), torch.cat([ep.support_y, ep.query_y])
    for _ in range(steps):
        loss = F.cross_entropy(net(x), y)
        grads = torch.autograd.grad(loss, list(net.parameters()))
        with torch.no_grad():
            for p, g in zip(net.parameters(), grads):
                p -= lr * g
    return dict(net.named_parameters())


@pytest.mark.parametrize("backend", ["vmap", "batched", "loop"])
def test_update_equals_formula(backend):
    model, batch = _setup(backend=backend)
    eps = 0.25
    theta = {k: v.detach().clone() for k, v in model.net.named_parameters()}
    phis = [_sgd_by_hand(model, ep, model.inner_steps, model.inner_lr) for ep in batch]
    model.train_step(batch, torch.optim.SGD(model.parameters(), lr=eps))
    moved = 0.0
    for name, p in model.net.named_parameters():
        mean_phi = torch.stack([phi[name].detach() for phi in phis]).mean(0)
        want = theta[name] + eps * (mean_phi - theta[name])
        assert torch.allclose(p.detach(), want, atol=1e-10), name
        moved = max(moved, (p.detach() - theta[name]).abs().max().item())
    assert moved > 1e-3  # the update did something (conv biases before BatchNorm get no gradient)


def test_epsilon_one_lands_on_mean_and_zero_steps_stay():
    model, batch = _setup(steps=0)
    before = copy.deepcopy(model.state_dict())
    model.train_step(batch, torch.optim.SGD(model.parameters(), lr=1.0))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model, batch = _setup(steps=1)
    phi = model.task_weights(batch)
    model.train_step(batch, torch.optim.SGD(model.parameters(), lr=1.0))
    for name, p in model.net.named_parameters():
        assert torch.allclose(p.detach(), phi[name].mean(0), atol=1e-12)


def test_registered():
    assert get_method("reptile") is Reptile and Reptile.needs_grad_at_test


def test_takes_none_of_maml_s_unused_arguments_but_loads_checkpoints_that_record_them(tmp_path):
    """Reptile once subclassed MAML: its checkpoints record ``first_order``; they still load."""
    with pytest.raises(TypeError, match="first_order"):
        Reptile(first_order=True)
    with pytest.raises(ValueError, match="backend='pool'.*'vmap', 'batched' or 'loop'"):
        Reptile(backend="pool")
    with pytest.raises(ValueError, match="inner_optimizer='adam'.*needs backend='loop'"):
        Reptile(inner_optimizer="adam")
    with pytest.raises(ValueError, match="inner_batch=10 needs backend='loop'"):
        Reptile(backend="batched", inner_batch=10)
    model = Reptile(n_way=3, hidden=4, inner_steps=2, test_inner_steps=7, zero_head=True)
    assert Reptile(**model.config()).config() == model.config()
    ckpt = torch.load(save_method(model, tmp_path / "new.pt", seed=0, profile="quick", train_seconds=0.0),
                      weights_only=True)
    ckpt["config"].update(backend="vmap", first_order=False)
    loaded, _ = load_method(atomic_torch_save(ckpt, tmp_path / "old.pt"), "cpu", expect="reptile")
    assert loaded.config() == model.config()
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("backend", ["vmap", "batched"])
def test_zero_head_update_equals_formula_and_leaves_head(backend):
    """With ``zero_head`` every task starts from a zero head: the body follows the formula from a
    copy whose head is zeroed, and the stored head is not meta-learned (it does not move)."""
    train, _, _ = glyph_splits()
    batch = EpisodeSampler(train, n_way=4, n_shot=1, n_query=2, seed=7).sample_batch(2)  # 4-way: head has 3 rows
    batch.support_x, batch.query_x = batch.support_x.double(), batch.query_x.double()
    torch.manual_seed(0)
    model = Reptile(n_way=3, hidden=4, inner_lr=0.1, inner_steps=3, zero_head=True, backend=backend).double()
    head_before = model.net.head.weight.detach().clone()
    zeroed = copy.deepcopy(model)
    zeroed.net.head = torch.nn.Linear(zeroed.net.head.in_features, 4).double()
    torch.nn.init.zeros_(zeroed.net.head.weight), torch.nn.init.zeros_(zeroed.net.head.bias)
    theta = {k: v.detach().clone() for k, v in zeroed.net.named_parameters()}
    phis = [_sgd_by_hand(zeroed, ep, 3, 0.1) for ep in batch]
    eps = 0.5
    model.train_step(batch, torch.optim.SGD(model.parameters(), lr=eps))
    moved = 0.0
    for name, p in model.net.named_parameters():
        if name.startswith("head."):
            continue
        mean_phi = torch.stack([phi[name].detach() for phi in phis]).mean(0)
        assert torch.allclose(p.detach(), theta[name] + eps * (mean_phi - theta[name]), atol=1e-10), name
        moved = max(moved, (p.detach() - theta[name]).abs().max().item())
    assert moved > 1e-4
    assert torch.equal(model.net.head.weight.detach(), head_before)


def _adam_setup(inner_batch=2, zero_head=False):
    train, _, _ = glyph_splits()
    batch = EpisodeSampler(train, n_way=3, n_shot=1, n_query=2, seed=5).sample_batch(3)
    batch.support_x, batch.query_x = batch.support_x.double(), batch.query_x.double()
    torch.manual_seed(0)
    model = Reptile(n_way=3, hidden=4, inner_lr=0.01, inner_steps=5, test_inner_steps=4, backend="loop",
                    inner_optimizer="adam", inner_batch=inner_batch, zero_head=zero_head).double()
    model.generator.manual_seed(11)
    return model, batch


def _paper_code_by_hand(net, batch, theta, opt, g, eps):
    """The paper's code (openai/supervised-reptile, ``Reptile.train_step``), written with torch.optim.Adam(β1 = 0) on a
    copy of the network: tasks one after another, each from θ, on mini-batches from shuffled passes over its
    examples; the optimizer (its second moments, its step count) is never reset; then θ + ε (mean φ̃ − θ)."""
    phis = []
    for ep in batch:
        net.load_state_dict(theta)
        x, y = torch.cat([ep.support_x, ep.query_x]), torch.cat([ep.support_y, ep.query_y])
        order = torch.cat([torch.randperm(len(x), generator=g) for _ in range(-(-5 * 2 // len(x)))])
        for s in range(5):
            idx = order[2 * s:2 * s + 2]
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
        phis.append({k: v.detach().clone() for k, v in net.state_dict().items()})
    return {k: theta[k] + eps * (torch.stack([phi[k] for phi in phis]).mean(0) - theta[k]) for k in theta}


def test_adam_inner_loop_is_the_paper_code_with_a_persistent_optimizer():
    model, batch = _adam_setup()
    eps, g = 0.5, torch.Generator().manual_seed(11)
    ref = copy.deepcopy(model.net)
    opt = torch.optim.Adam(ref.parameters(), lr=0.01, betas=(0.0, 0.999), eps=1e-8)
    state = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
    for _ in range(2):  # the second meta-step starts from the moments the first left
        want = _paper_code_by_hand(ref, batch, state, opt, g, eps)
        model.train_step(batch, torch.optim.SGD(model.parameters(), lr=eps))
        for k, v in model.net.state_dict().items():
            assert torch.allclose(v, want[k], atol=1e-10), k
        state = want
    assert int(model.inner_t) == 2 * 3 * 5 == opt.state[next(iter(opt.state))]["step"]
    sq = torch.cat([opt.state[p]["exp_avg_sq"].flatten() for p in opt.param_groups[0]["params"]])
    assert torch.allclose(model.inner_sq, sq, atol=1e-12) and model.inner_sq.abs().sum() > 0


def test_test_time_adam_starts_from_the_kept_moments_and_leaves_them():
    model, batch = _adam_setup()
    model.train_step(batch, torch.optim.SGD(model.parameters(), lr=1.0))
    ep, before = batch[0], copy.deepcopy(model.state_dict())
    logits = model.predict(ep.support_x, ep.support_y, ep.query_x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    ref = copy.deepcopy(model.net)
    opt = torch.optim.Adam(ref.parameters(), lr=0.01, betas=(0.0, 0.999), eps=1e-8)
    for p, sq in zip(ref.parameters(), model._moments()[0].values()):
        opt.state[p] = {"step": torch.tensor(float(model.inner_t)), "exp_avg": torch.zeros_like(p),
                        "exp_avg_sq": sq.clone()}
    for _ in range(4):  # test time: the whole support set in every step
        opt.zero_grad()
        F.cross_entropy(ref(ep.support_x), ep.support_y).backward()
        opt.step()
    assert torch.allclose(logits, ref(ep.query_x), atol=1e-9)
    model.inner_sq.zero_()
    model.inner_t.zero_()  # fresh moments give other weights: the kept ones were used
    assert not torch.allclose(model.predict(ep.support_x, ep.support_y, ep.query_x), logits, atol=1e-6)


@pytest.mark.parametrize("inner_optimizer", ["sgd", "adam"])
def test_non_transductive_predicts_each_query_with_the_support_set_alone(inner_optimizer):
    model, batch = _adam_setup()
    model.inner_optimizer = inner_optimizer
    ep = batch[0]
    trans = model.predict(ep.support_x, ep.support_y, ep.query_x)
    model.transductive = False
    single = model.predict(ep.support_x, ep.support_y, ep.query_x)
    phi, _ = model.adapt(ep.support_x, ep.support_y, model.test_inner_steps, 0, model._moments())
    for i, q in enumerate(ep.query_x):  # by hand: the support set and one query, one batch
        assert torch.allclose(single[i], model.net(torch.cat([ep.support_x, q[None]]), phi)[-1], atol=1e-10)
    flipped = model.predict(ep.support_x, ep.support_y, ep.query_x.flip(0))
    assert torch.allclose(flipped, single.flip(0), atol=1e-10)  # a query's logits ignore the other queries
    assert not torch.allclose(trans, single, atol=1e-6)  # transductive: BatchNorm from the queries' statistics


def test_records_say_which_batch_norm_the_queries_had():
    assert Reptile().test_batch_norm == "batch" and Reptile(transductive=False).test_batch_norm == "support+query"


def test_zero_head_adam_runs_any_n_way_and_keeps_the_body_moments():
    model, batch = _adam_setup(zero_head=True)
    model.train_step(batch, torch.optim.SGD(model.parameters(), lr=1.0))
    assert int(model.inner_t) == 15
    sq, _ = model._moments()  # the body's second moments were kept for the next meta-step
    body = [k for k in sq if not k.startswith("head.")]
    assert body and all((sq[k] > 0).any() for k in body)
    train, _, _ = glyph_splits()
    ep = EpisodeSampler(train, n_way=4, n_shot=1, n_query=1, seed=1).sample()
    assert model.predict(ep.support_x.double(), ep.support_y, ep.query_x.double()).shape == (4, 4)
