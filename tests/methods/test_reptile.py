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


@pytest.mark.parametrize("backend", ["vmap", "batched"])
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
    with pytest.raises(ValueError, match="backend='loop'.*'vmap' or 'batched'"):
        Reptile(backend="loop")
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
