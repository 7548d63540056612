"""The Relation Network: shapes, score range, the paper's MSE loss, gradient flow and properties."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from fslcourse.data import EpisodeSampler
from fslcourse.methods import get_method
from fslcourse.methods.relation import RelationNet


def small(**kw):
    torch.manual_seed(0)
    return RelationNet(hidden=8, relation_hidden=4, **kw)


def test_registered_shapes_and_paper_layout(glyphs):
    """28x28 -> (hidden, 5, 5) maps (no final pooling), scores (n_query_total, n_way) in [0, 1]."""
    assert get_method("relation") is RelationNet
    model = small().eval()
    assert model.backbone(torch.zeros(2, 1, 28, 28)).shape == (2, 8, 5, 5)
    ep = EpisodeSampler(glyphs[2], 5, 2, 3, seed=0).sample()
    with torch.no_grad():
        scores = model.predict(ep.support_x, ep.support_y, ep.query_x)
    assert scores.shape == (15, 5)
    assert (scores >= 0).all() and (scores <= 1).all()


def test_matches_a_loop_over_pairs_with_sum_and_mean(glyphs):
    """Each score is g([sum/mean of the class's support maps, query map]) computed pair by pair."""
    ep = EpisodeSampler(glyphs[2], 3, 2, 2, seed=1).sample()
    for aggregate in ("sum", "mean"):
        model = small(aggregate=aggregate).eval()
        with torch.no_grad():
            got = model.predict(ep.support_x, ep.support_y, ep.query_x)
            maps = model.backbone(torch.cat([ep.support_x, ep.query_x]))
            s, q = maps[: len(ep.support_x)], maps[len(ep.support_x):]
            reduce = torch.sum if aggregate == "sum" else torch.mean
            classes = [reduce(s[ep.support_y == k], dim=0) for k in range(3)]
            want = torch.tensor([[model.relation(torch.cat([c, qi])[None]).item() for c in classes] for qi in q])
        assert torch.allclose(got, want, atol=1e-5), aggregate


def test_loss_is_mse_to_one_hot_and_gradient_reaches_both_modules(glyphs):
    model = small().train()
    ep = EpisodeSampler(glyphs[0], 4, 1, 2, seed=0).sample()
    loss, acc = model.loss(ep)
    # train mode: BatchNorm uses the batch statistics, so recomputing gives the same scores
    scores = model.predict(ep.support_x, ep.support_y, ep.query_x)
    want = ((scores - F.one_hot(ep.query_y, 4).float()) ** 2).mean()
    assert torch.allclose(loss, want, atol=1e-6) and 0 <= acc <= 1
    loss.backward()
    for part in (model.backbone, model.relation):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_gradient_matches_finite_differences_on_the_last_layer(glyphs):
    model = small().double().eval()
    ep = EpisodeSampler(glyphs[2], 3, 1, 2, seed=2).sample()
    sx, qx = ep.support_x.double(), ep.query_x.double()

    def loss_fn():
        scores = model.predict(sx, ep.support_y, qx)
        return F.mse_loss(scores, F.one_hot(ep.query_y, 3).double())

    w = model.relation[-2].weight
    loss_fn().backward()
    analytic = w.grad.clone()
    eps, numeric = 1e-6, torch.zeros_like(w)
    with torch.no_grad():
        for i in range(w.numel()):
            w.view(-1)[i] += eps
            up = loss_fn()
            w.view(-1)[i] -= 2 * eps
            down = loss_fn()
            w.view(-1)[i] += eps
            numeric.view(-1)[i] = (up - down) / (2 * eps)
    assert torch.allclose(analytic, numeric, atol=1e-7, rtol=1e-5)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10**6), n_way=st.integers(2, 4), n_shot=st.integers(1, 3))
def test_support_order_and_label_permutation(seed, n_way, n_shot, check_support_permutation):
    """Shuffling the support set changes nothing; renaming the classes permutes the columns."""
    model = small().eval()
    check_support_permutation(model, seed, n_way, n_shot, atol=1e-5)


def test_config_rebuilds_and_bad_aggregate_is_named():
    model = small(aggregate="mean")
    assert RelationNet(**model.config()).config() == {"hidden": 8, "relation_hidden": 4, "aggregate": "mean"}
    with pytest.raises(ValueError, match="aggregate='max'"):
        RelationNet(aggregate="max")


def test_a_few_training_steps_beat_chance(glyphs):
    """The recipe's loop learns on procedural glyphs: validation accuracy rises above chance (20%)."""
    from types import SimpleNamespace

    data = SimpleNamespace(train=glyphs[0], val=glyphs[1])
    from fslcourse.training import train

    _, result = train("relation", "quick", data=data, save=False, device="cpu", progress=False, steps=80,
                      val_every=40, val_episodes=20, n_way=5, n_query=3, model={"hidden": 8, "aggregate": "mean"})
    assert result.steps == 80 and result.best_val_accuracy > 40.0


def test_a_display_shows_relation_scores_as_they_are_not_their_softmax(random_episode):
    """A softmax over scores in [0, 1] sits near 1 / n_way whatever the model thinks (notebook 11 once showed a
    right answer at 40%); displays take the scores themselves, and a logits model still gets its softmax."""
    from fslcourse.methods.base import class_confidences, confidence_name
    from fslcourse.methods.protonet import ProtoNet
    from fslcourse.methods.transductive import BatchStatistics

    torch.manual_seed(0)
    sx, sy, qx, _ = random_episode(n_way=5, n_shot=1, n_query=2)
    relation = RelationNet(hidden=8, relation_hidden=4).eval()
    with torch.no_grad():
        scores = relation.predict(sx, sy, qx)
    assert torch.equal(class_confidences(relation, scores), scores)
    assert torch.equal(class_confidences(BatchStatistics(relation), scores), scores)  # a wrapped model too
    assert confidence_name(relation) == "relation score" and confidence_name(ProtoNet()) == "probability"
    logits = torch.randn(4, 5)
    assert torch.allclose(class_confidences(ProtoNet(), logits), logits.softmax(1))


def test_separate_embedding_passes_normalise_support_and_queries_apart(glyphs):
    """With batch statistics, embed_passes="separate" is the paper's code: the support set and the queries each
    through the embedding in its own batch; "pooled" (the course) normalises them together. With running statistics
    the two are the same function."""
    from fslcourse.methods.transductive import BatchStatistics

    torch.manual_seed(0)
    model = small(aggregate="sum").eval()
    ep = EpisodeSampler(glyphs[2], 4, 1, 2, seed=3).sample()
    with torch.no_grad():
        pooled = BatchStatistics(model).predict(ep.support_x, ep.support_y, ep.query_x)
        model.embed_passes = "separate"
        separate = BatchStatistics(model).predict(ep.support_x, ep.support_y, ep.query_x)
        for m in model.modules():  # the reference: two training-mode passes, as the paper's test code runs them
            if isinstance(m, torch.nn.BatchNorm2d):
                m.train()
        s_maps, q_maps = model.backbone(ep.support_x), model.backbone(ep.query_x)
        order = torch.argsort(ep.support_y)  # one support map per class (1-shot), in class order
        want = model.relation_scores(s_maps[order], q_maps)
        model.eval()
        assert torch.allclose(separate, want, atol=1e-6)
        assert not torch.allclose(pooled, separate, atol=1e-4)  # pooled statistics differ
        running_sep = model.predict(ep.support_x, ep.support_y, ep.query_x)
        model.embed_passes = "pooled"
        assert torch.allclose(running_sep, model.predict(ep.support_x, ep.support_y, ep.query_x), atol=1e-6)
        model.embed_passes = "both"
        with pytest.raises(ValueError, match="embed_passes='both' is not known"):
            model.predict(ep.support_x, ep.support_y, ep.query_x)
