"""Matching Networks against a hand-computed attention, autograd-free loops and properties."""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from fslcourse.data import EpisodeSampler
from fslcourse.methods import get_method
from fslcourse.methods.matching import MatchingNet, matching_log_probs


def test_hand_computed_attention_on_a_tiny_case():
    """Two support points at 0° and 90°, a query at 45° and one at 0°, scale 1 (the paper's softmax)."""
    support = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 5.0]])  # cosines depend on direction only
    support_y = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 1.0], [3.0, 0.0]])
    got = matching_log_probs(query, support, support_y, n_way=2, scale=1.0).exp()
    c = 1 / math.sqrt(2)
    # query 0: cos = (c, c, c): uniform attention over 3 supports -> P = (1/3, 2/3)
    # query 1: cos = (1, 0, 0): a = (e, 1, 1) / (e + 2) -> P = (e/(e+2), 2/(e+2))
    want = torch.tensor([[math.exp(c) / (3 * math.exp(c)), 2 / 3],
                         [math.e / (math.e + 2), 2 / (math.e + 2)]])
    assert torch.allclose(got, want, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(n_way=st.integers(1, 6), n_shot=st.integers(1, 4), n_query=st.integers(1, 5), dim=st.integers(1, 8),
       scale=st.floats(0.1, 30.0), seed=st.integers(0, 10**6))
def test_equals_attention_weighted_one_hot_sum(n_way, n_shot, n_query, dim, scale, seed):
    """log P equals the log of sum_i softmax(scale * cos)_i * onehot(y_i), and P sums to 1."""
    g = torch.Generator().manual_seed(seed)
    support = torch.randn(n_way * n_shot, dim, generator=g, dtype=torch.float64)
    query = torch.randn(n_query, dim, generator=g, dtype=torch.float64)
    support_y = torch.arange(n_way).repeat_interleave(n_shot)
    cos = F.cosine_similarity(query[:, None], support[None], dim=-1)  # (n_query, n_support)
    attention = torch.softmax(scale * cos, dim=1)
    want = attention @ F.one_hot(support_y, n_way).double()  # (n_query, n_way)
    got = matching_log_probs(query, support, support_y, n_way, scale).exp()
    assert torch.allclose(got, want, atol=1e-10)
    assert torch.allclose(got.sum(1), torch.ones(n_query, dtype=torch.float64), atol=1e-10)


@settings(max_examples=20, deadline=None)
@given(n_way=st.integers(2, 6), n_shot=st.integers(1, 4), seed=st.integers(0, 10**6))
def test_low_temperature_is_cosine_nearest_neighbour(n_way, n_shot, seed):
    """As scale -> infinity the attention is one-hot on the most similar support example."""
    g = torch.Generator().manual_seed(seed)
    support = torch.randn(n_way * n_shot, 6, generator=g, dtype=torch.float64)
    query = torch.randn(7, 6, generator=g, dtype=torch.float64)
    support_y = torch.arange(n_way).repeat_interleave(n_shot)
    cos = F.cosine_similarity(query[:, None], support[None], dim=-1)
    top2 = cos.topk(min(2, cos.shape[1]), dim=1).values
    if top2.shape[1] == 2 and (top2[:, 0] - top2[:, 1]).min() < 1e-3:
        return  # near ties: nearest neighbour is ill-defined
    nearest_label = support_y[cos.argmax(1)]
    logp = matching_log_probs(query, support, support_y, n_way, scale=1e5)
    assert torch.equal(logp.argmax(1), nearest_label)
    assert torch.allclose(logp.exp().max(1).values, torch.ones(7, dtype=torch.float64), atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6), n_way=st.integers(2, 5), n_shot=st.integers(1, 3))
def test_support_order_and_label_permutation(seed, n_way, n_shot, check_support_permutation):
    """Shuffling the support set changes nothing; renaming the classes permutes the columns."""
    torch.manual_seed(0)
    model = MatchingNet(backbone_kwargs={"hidden": 4}).eval()
    check_support_permutation(model, seed, n_way, n_shot, atol=1e-4)


def test_model_matches_loop_over_classes_and_loss_is_nll(glyphs):
    assert get_method("matching") is MatchingNet
    torch.manual_seed(0)
    model = MatchingNet(backbone_kwargs={"hidden": 8}, scale=5.0).eval()
    ep = EpisodeSampler(glyphs[2], 4, 2, 3, seed=0).sample()
    with torch.no_grad():
        got = model.predict(ep.support_x, ep.support_y, ep.query_x)
        z = model.backbone(torch.cat([ep.support_x, ep.query_x]))
        zs, zq = z[: len(ep.support_x)], z[len(ep.support_x):]
        a = torch.softmax(5.0 * F.normalize(zq, dim=1) @ F.normalize(zs, dim=1).T, dim=1)
        want = torch.stack([a[:, ep.support_y == k].sum(1) for k in range(4)], dim=1).log()
        loss, _ = model.loss(ep)
    assert got.shape == (12, 4)
    assert torch.allclose(got, want, atol=1e-5)
    nll = -want[torch.arange(12), ep.query_y].mean()  # the paper's loss: -log P(y | x, S)
    assert torch.allclose(loss, nll, atol=1e-5)


def test_config_rebuilds_and_bad_scale_is_named(glyphs):
    model = MatchingNet(backbone_kwargs={"hidden": 4}, scale=3.0).eval()
    clone = MatchingNet(**model.config()).eval()
    clone.load_state_dict(model.state_dict())
    ep = EpisodeSampler(glyphs[2], 3, 1, 2, seed=0).sample()
    with torch.no_grad():
        assert torch.equal(model.predict(ep.support_x, ep.support_y, ep.query_x),
                           clone.predict(ep.support_x, ep.support_y, ep.query_x))
    with pytest.raises(ValueError, match="scale=0"):
        MatchingNet(scale=0)


def test_a_few_training_steps_beat_chance(glyphs):
    """The recipe's loop learns on procedural glyphs: validation accuracy rises above chance (20%)."""
    from types import SimpleNamespace

    data = SimpleNamespace(train=glyphs[0], val=glyphs[1])
    from fslcourse.training import train

    _, result = train("matching", "quick", data=data, save=False, device="cpu", progress=False, steps=60,
                      val_every=30, val_episodes=20, n_way=10, n_query=2, model={"backbone_kwargs": {"hidden": 8}})
    assert result.steps == 60 and result.best_val_accuracy > 40.0
