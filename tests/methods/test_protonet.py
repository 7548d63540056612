"""Prototypical Networks against direct formulas, from-scratch code and properties."""
import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fslcourse.data import EpisodeSampler
from fslcourse.methods import ProtoNet, get_method
from fslcourse.methods.protonet import protonet_logits


def from_scratch(model, support_x, support_y, query_x):
    """Snell et al. eq. (1)-(2) written out with loops over classes."""
    z = model.backbone(torch.cat([support_x, query_x]))
    zs, zq = z[: len(support_x)], z[len(support_x):]
    n_way = int(support_y.max()) + 1
    protos = torch.stack([zs[support_y == k].mean(0) for k in range(n_way)])
    return torch.stack([-((zq - protos[k]) ** 2).sum(1) for k in range(n_way)], dim=1)


def test_registered_and_matches_from_scratch(glyphs):
    assert get_method("protonet") is ProtoNet
    torch.manual_seed(0)
    model = ProtoNet(backbone_kwargs={"hidden": 16}).eval()
    ep = EpisodeSampler(glyphs[2], 5, 3, 4, seed=0).sample()
    with torch.no_grad():
        got = model.predict(ep.support_x, ep.support_y, ep.query_x)
        want = from_scratch(model, ep.support_x, ep.support_y, ep.query_x)
    assert got.shape == (20, 5)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)


def test_config_rebuilds_the_same_model(glyphs):
    model = ProtoNet(backbone="resnet", backbone_kwargs={"widths": [4, 8]}, distance="cosine", scale=5.0).eval()
    clone = ProtoNet(**model.config()).eval()
    clone.load_state_dict(model.state_dict())
    ep = EpisodeSampler(glyphs[2], 3, 1, 2, seed=0).sample()
    with torch.no_grad():
        a = model.predict(ep.support_x, ep.support_y, ep.query_x)
        b = clone.predict(ep.support_x, ep.support_y, ep.query_x)
    assert torch.equal(a, b) and a.abs().max() <= 5.0 + 1e-5


@settings(max_examples=40, deadline=None)
@given(n_query=st.integers(1, 6), n_way=st.integers(1, 6), dim=st.integers(1, 9), seed=st.integers(0, 10**6))
def test_euclidean_logits_equal_direct_formula(n_query, n_way, dim, seed):
    g = torch.Generator().manual_seed(seed)
    q, c = torch.randn(n_query, dim, generator=g) * 3, torch.randn(n_way, dim, generator=g) * 3
    want = -((q.double()[:, None] - c.double()[None]) ** 2).sum(-1)
    got = protonet_logits(q, c)
    assert got.shape == (n_query, n_way) and (got <= 0).all()
    assert torch.allclose(got.double(), want, rtol=1e-4, atol=1e-3)
    cos = protonet_logits(q, c, "cosine", scale=2.0)
    want_cos = 2.0 * torch.nn.functional.cosine_similarity(q[:, None], c[None], dim=-1)
    assert torch.allclose(cos, want_cos, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), n_way=st.integers(2, 5), n_shot=st.integers(1, 4))
def test_support_order_and_label_permutation(seed, n_way, n_shot, check_support_permutation):
    """Shuffling the support set changes nothing; renaming the classes permutes the logit columns."""
    torch.manual_seed(0)
    model = ProtoNet(backbone_kwargs={"hidden": 4}).eval()
    check_support_permutation(model, seed, n_way, n_shot, atol=1e-3)


def test_query_at_a_prototype_gets_logit_zero():
    c = torch.randn(4, 7)
    logits = protonet_logits(c[2:3].clone(), c)
    assert logits[0, 2].abs() < 1e-4 and logits.argmax() == 2


def test_errors_name_the_value():
    with pytest.raises(ValueError, match="distance='manhattan' is not known"):
        ProtoNet(distance="manhattan")
    with pytest.raises(ValueError, match="distance='l1' is not known"):
        protonet_logits(torch.zeros(1, 2), torch.zeros(1, 2), "l1")


def test_short_training_on_glyphs_beats_chance(glyphs):
    """40 steps on procedural glyphs: meta-validation accuracy rises well above chance (20%)."""
    from types import SimpleNamespace

    from fslcourse.evaluate import evaluate
    from fslcourse.recipe import Recipe
    from fslcourse.training import train

    torch.manual_seed(0)
    before = evaluate(ProtoNet(backbone_kwargs={"hidden": 16}), glyphs[1], 5, 1, 5, 50, seed=0).accuracy
    recipe = Recipe(n_way=20, n_shot=1, n_query=3, steps=40, lr=3e-3, val_every=20, val_episodes=50,
                    model={"backbone_kwargs": {"hidden": 16}})
    _, result = train("protonet", recipe, data=SimpleNamespace(train=glyphs[0], val=glyphs[1]), save=False,
                      device="cpu", progress=False)
    assert result.steps == 40 and result.log.val_step == [20, 40]
    assert result.best_val_accuracy > 60 and result.best_val_accuracy > before + 10


@pytest.mark.parametrize("name,added", [("hallucinating-protonet", {"n_generated": 5}), ("metagan", {"n_fake": 1}),
                                        ("parameter-prediction", {}), ("cosine-prototypes", {})])
def test_methods_measured_against_protonet_train_on_its_recipes(name, added):
    """Each is compared with ProtoNet at a matched budget: the same episodes, steps, schedule and seed."""
    cls = get_method(name)
    assert set(cls.RECIPES) == set(ProtoNet.RECIPES)
    for recipe_name, r in ProtoNet.RECIPES.items():
        mine = cls.RECIPES[recipe_name]
        assert mine.model == {**r.model, **added}, recipe_name
        same = {f.name for f in dataclasses.fields(r)} - {"model", "note"}
        assert all(getattr(mine, k) == getattr(r, k) for k in same), recipe_name

