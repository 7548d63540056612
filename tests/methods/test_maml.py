"""MAML and FOMAML against learn2learn, finite differences, and the adaptation they promise."""
import copy

import learn2learn as l2l  # a named dependency that make setup builds: missing, these tests fail, not skip
import pytest
import torch
import torch.nn.functional as F

from fslcourse.data import EpisodeSampler, glyph_splits
from fslcourse.methods import get_method
from fslcourse.methods.maml import FOMAML, MAML, inner_loop


@pytest.fixture(scope="module")
def batch():
    train, _, _ = glyph_splits()
    return _to64(EpisodeSampler(train, n_way=3, n_shot=1, n_query=2, seed=3).sample_batch(3))


def _to64(b):
    b.support_x, b.query_x = b.support_x.double(), b.query_x.double()
    return b


def _tiny(cls, backend, steps=2, seed=0):
    torch.manual_seed(seed)
    return cls(n_way=3, hidden=4, inner_lr=0.3, inner_steps=steps, test_inner_steps=steps,
               backend=backend).double()


def _ours(model, batch):
    grads, _, _ = model.meta_gradient(batch)
    return [grads[k] for k, _ in model.net.named_parameters()]


def _learn2learn(model, batch, first_order):
    net = copy.deepcopy(model.net)
    maml = l2l.algorithms.MAML(net, lr=model.inner_lr, first_order=first_order)
    losses = []
    for ep in batch:
        learner = maml.clone()
        for _ in range(model.inner_steps):
            learner.adapt(F.cross_entropy(learner(ep.support_x), ep.support_y))
        losses.append(F.cross_entropy(learner(ep.query_x), ep.query_y))
    return torch.autograd.grad(torch.stack(losses).mean(), list(net.parameters()))


@pytest.mark.parametrize("backend", ["vmap", "batched", "loop"])
@pytest.mark.parametrize("cls", [MAML, FOMAML])
def test_meta_gradient_matches_learn2learn(batch, cls, backend):
    model = _tiny(cls, backend)
    ours, ref = _ours(model, batch), _learn2learn(model, batch, first_order=model.first_order)
    err = max((a - b).abs().max().item() for a, b in zip(ours, ref))
    assert err <= 1e-5, f"{cls.__name__}/{backend}: max |ours - learn2learn| = {err:.2e}"
    # the orders must differ, or the test could not tell them apart
    other = _learn2learn(model, batch, first_order=not model.first_order)
    assert max((a - b).abs().max().item() for a, b in zip(ours, other)) > 1e-4


def test_second_order_matches_finite_differences(batch):
    model = _tiny(MAML, "vmap", steps=1)
    params = list(model.net.parameters())
    g = _ours(model, batch)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        direction = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
        analytic = sum((gi * d).sum() for gi, d in zip(g, direction)).item()
        eps, values = 1e-7, []  # larger steps cross ReLU kinks of the inner step
        for sign in (1, -1):
            with torch.no_grad():
                for p, d in zip(params, direction):
                    p.add_(sign * eps * d)
            values.append(model.meta_gradient(batch)[1].item())
            with torch.no_grad():
                for p, d in zip(params, direction):
                    p.sub_(sign * eps * d)
        numeric = (values[0] - values[1]) / (2 * eps)
        assert abs(analytic - numeric) <= 1e-5 * max(1.0, abs(numeric)), (analytic, numeric)


def test_query_loss_falls_after_adaptation():
    train, _, _ = glyph_splits()
    batch = _to64(EpisodeSampler(train, n_way=3, n_shot=1, n_query=5, seed=1).sample_batch(8))
    torch.manual_seed(0)
    model = MAML(n_way=3, hidden=8, inner_lr=0.1).double()
    for ep in batch:
        adapted = inner_loop(model.net, dict(model.net.named_parameters()), ep.support_x, ep.support_y,
                             model.inner_lr, 5)
        for x, y in ((ep.support_x, ep.support_y), (ep.query_x, ep.query_y)):
            before, after = F.cross_entropy(model.net(x), y), F.cross_entropy(model.net(x, adapted), y)
            assert after < before - 0.05, (before.item(), after.item())


def test_predict_works_without_grad_and_leaves_weights(batch):
    model = _tiny(MAML, "vmap")
    before = copy.deepcopy(model.state_dict())
    ep = batch[0]
    with torch.no_grad():
        logits = model.predict(ep.support_x, ep.support_y, ep.query_x)
    assert logits.shape == (6, 3) and not logits.requires_grad
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="n_way=2"):
        model.predict(ep.support_x[:2], ep.support_y[:2], ep.query_x)


def test_registered_and_config_rebuilds():
    assert get_method("maml") is MAML and get_method("fomaml") is FOMAML
    model = FOMAML(n_way=3, hidden=4, inner_steps=2, test_inner_steps=7, backend="loop")
    clone = FOMAML(**model.config())
    assert clone.config() == model.config() and clone.needs_grad_at_test


@pytest.mark.parametrize("backend", ["vmap", "batched", "loop"])
@pytest.mark.parametrize("cls", [MAML, FOMAML])
def test_zero_head_meta_gradient_matches_learn2learn_with_a_zeroed_head(batch, cls, backend):
    torch.manual_seed(0)
    model = cls(n_way=3, hidden=4, inner_lr=0.3, inner_steps=2, test_inner_steps=2, backend=backend,
                zero_head=True).double()
    ours = _ours(model, batch)
    zeroed = copy.deepcopy(model)  # the reference: learn2learn's MAML on a network whose head is zero
    with torch.no_grad():
        zeroed.net.head.weight.zero_()
        zeroed.net.head.bias.zero_()
    ref = _learn2learn(zeroed, batch, first_order=model.first_order)
    names = [k for k, _ in model.net.named_parameters()]
    body = [i for i, k in enumerate(names) if not k.startswith("head.")]
    err = max((ours[i] - ref[i]).abs().max().item() for i in body)
    assert err <= 1e-5, f"{cls.__name__}/{backend}: max |ours - learn2learn| = {err:.2e}"
    assert all(ours[i].abs().max() == 0 for i, k in enumerate(names) if k.startswith("head."))
    assert max(ours[i].abs().max().item() for i in body) > 1e-6  # the body does learn


def test_zero_head_first_step_is_a_scaled_class_mean():
    """One inner step from a zero head: row c = α/n Σ_i (1[y_i=c] - 1/n_way) f(x_i) (Kao et al. 2022)."""
    train, _, _ = glyph_splits()
    ep = EpisodeSampler(train, n_way=4, n_shot=3, n_query=1, seed=2).sample()
    torch.manual_seed(0)
    model = MAML(n_way=5, hidden=6, inner_lr=0.5, zero_head=True).double()
    x = ep.support_x.double()
    params = dict(model.net.named_parameters())
    adapted = inner_loop(model.net, params, x, ep.support_y, model.inner_lr, 1, n_way=4)
    with torch.no_grad():  # the features f(x): the network without its head
        h = x
        for i in range(model.net.depth):
            h = F.conv2d(h, params[f"convs.{i}.weight"], params[f"convs.{i}.bias"], stride=2, padding=1)
            h = F.relu(torch.nn.functional.batch_norm(h, None, None, params[f"norms.{i}.weight"],
                                                      params[f"norms.{i}.bias"], training=True))
        feats = h.flatten(1)  # (n_way * n_shot, D)
    onehot = F.one_hot(ep.support_y, 4).double() - 1.0 / 4  # (n, n_way)
    expected = model.inner_lr / len(x) * onehot.T @ feats  # (n_way, D)
    assert adapted["head.weight"].shape == (4, feats.shape[1])
    assert torch.allclose(adapted["head.weight"], expected, atol=1e-8)
    assert torch.allclose(adapted["head.bias"], model.inner_lr / len(x) * onehot.sum(0), atol=1e-10)


def test_zero_head_runs_episodes_of_any_n_way():
    train, _, _ = glyph_splits()
    torch.manual_seed(0)
    model = MAML(n_way=5, hidden=4, zero_head=True)
    ep = EpisodeSampler(train, n_way=7, n_shot=1, n_query=2, seed=0).sample()
    logits = model.predict(ep.support_x, ep.support_y, ep.query_x)
    assert logits.shape == (14, 7)
    assert MAML(**model.config()).zero_head


@pytest.mark.parametrize("zero", [False, True])
def test_predict_takes_test_inner_steps_not_the_training_ones(zero):
    """The paper recipes train with 1 inner step and test with 3 (20-way: 5 and 10): predict must adapt for
    ``test_inner_steps``, checked against plain autograd steps written out here."""
    torch.manual_seed(0)
    model = MAML(n_way=3, hidden=4, inner_lr=0.3, inner_steps=1, test_inner_steps=3, zero_head=zero).double()
    ep = EpisodeSampler(glyph_splits(seed=0)[2], 3, 2, 2, seed=1).sample()
    sx, sy, qx = ep.support_x.double(), ep.support_y, ep.query_x.double()

    def by_hand(steps):
        phi = {k: v.detach().clone() for k, v in model.net.named_parameters()}
        if zero:  # the zeroing trick: every task starts from a zero head
            phi["head.weight"], phi["head.bias"] = torch.zeros_like(phi["head.weight"]), torch.zeros(3).double()
        for _ in range(steps):
            phi = {k: v.requires_grad_() for k, v in phi.items()}
            g = torch.autograd.grad(F.cross_entropy(model.net(sx, phi), sy), list(phi.values()))
            phi = {k: (v - 0.3 * gk).detach() for (k, v), gk in zip(phi.items(), g)}
        with torch.no_grad():
            return model.net(qx, phi)

    got = model.predict(sx, sy, qx)
    assert torch.allclose(got, by_hand(3), atol=1e-10)
    assert not torch.allclose(got, by_hand(1), atol=1e-4)  # the control: one step gives other logits
