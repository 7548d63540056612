"""Transductive inference against closed forms, the hard k-means limit and properties."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fslcourse.data import EpisodeSampler
from fslcourse.methods import ProtoNet
from fslcourse.methods.transductive import BatchStatistics, SoftKMeans, refine_prototypes


def test_zero_steps_returns_the_prototypes():
    protos, z_query = torch.randn(4, 3), torch.randn(10, 3)
    assert torch.equal(refine_prototypes(protos, torch.ones(4), z_query, steps=0), protos)


def test_one_step_matches_the_formula_written_out():
    # two 1-D prototypes at 0 and 2 (3 and 1 support examples), queries at 0.5 and 1.5
    protos, counts, z_query = torch.tensor([[0.0], [2.0]]), torch.tensor([3, 1]), torch.tensor([[0.5], [1.5]])
    d = torch.tensor([[0.25, 2.25], [2.25, 0.25]])  # squared distances, query x prototype
    w = torch.exp(-d) / torch.exp(-d).sum(1, keepdim=True)
    want = torch.stack([(3 * 0.0 + w[0, 0] * 0.5 + w[1, 0] * 1.5) / (3 + w[:, 0].sum()),
                        (1 * 2.0 + w[0, 1] * 0.5 + w[1, 1] * 1.5) / (1 + w[:, 1].sum())])[:, None]
    assert torch.allclose(refine_prototypes(protos, counts, z_query), want, atol=1e-6)


def test_small_temperature_is_a_hard_k_means_step():
    protos, counts = torch.tensor([[0.0, 0.0], [10.0, 0.0]]), torch.tensor([1, 2])
    z_query = torch.tensor([[1.0, 0.0], [2.0, 1.0], [9.0, 0.0]])
    got = refine_prototypes(protos, counts, z_query, temperature=1e-3)
    want = torch.stack([(protos[0] + z_query[0] + z_query[1]) / 3, (2 * protos[1] + z_query[2]) / 3])
    assert torch.allclose(got, want, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3))
def test_refinement_ignores_the_order_of_the_queries(seed, steps):
    g = torch.Generator().manual_seed(seed)
    protos, z_query = torch.randn(5, 4, generator=g), torch.randn(12, 4, generator=g)
    perm = torch.randperm(12, generator=g)
    a = refine_prototypes(protos, torch.full((5,), 2), z_query, steps)
    b = refine_prototypes(protos, torch.full((5,), 2), z_query[perm], steps)
    assert torch.allclose(a, b, atol=1e-5)


def test_queries_on_their_prototypes_leave_them_in_place():
    protos = torch.tensor([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0]])
    z_query = protos.repeat_interleave(4, dim=0)  # (12, 2): four queries exactly on each prototype
    assert torch.allclose(refine_prototypes(protos, torch.ones(3), z_query, steps=3), protos, atol=1e-5)


def test_soft_k_means_with_zero_steps_is_protonet(glyphs):
    torch.manual_seed(0)
    model = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    ep = EpisodeSampler(glyphs[2], 4, 2, 3, seed=0).sample()
    with torch.no_grad():
        assert torch.allclose(SoftKMeans(model, steps=0).predict(ep.support_x, ep.support_y, ep.query_x),
                              model.predict(ep.support_x, ep.support_y, ep.query_x), atol=1e-5)
        refined = SoftKMeans(model, steps=1).predict(ep.support_x, ep.support_y, ep.query_x)
    assert refined.shape == (12, 4) and torch.isfinite(refined).all()


def test_batch_statistics_normalise_with_the_episode_and_keep_the_running_ones(glyphs):
    torch.manual_seed(0)
    model = ProtoNet(backbone_kwargs={"hidden": 8})
    with torch.no_grad():  # move the running statistics away from (0, 1) so the two modes differ
        for _ in range(3):
            model.train().embed(torch.rand(16, 1, 28, 28))
    model.eval()
    running = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    ep = EpisodeSampler(glyphs[2], 4, 1, 3, seed=0).sample()
    with torch.no_grad():
        got = BatchStatistics(model).predict(ep.support_x, ep.support_y, ep.query_x)
        for k, v in running.items():
            assert torch.equal(model.state_dict()[k], v), f"{k} changed"
        assert not model.training
        model.train()  # reference: the same network in training mode normalises with the batch's statistics
        want = model.predict(ep.support_x, ep.support_y, ep.query_x)
        model.eval()
        inductive = model.predict(ep.support_x, ep.support_y, ep.query_x)
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(got, inductive, atol=1e-3)
    assert BatchStatistics(model).test_batch_norm == "batch"


def test_soft_k_means_over_batch_statistics_records_both(glyphs):
    model = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    wrapped = SoftKMeans(BatchStatistics(model))
    assert wrapped.test_batch_norm == "batch" and wrapped.transductive == "soft k-means"


@pytest.mark.parametrize("kwargs, match", [({"steps": -1}, "steps=-1"), ({"steps": 1.5}, "steps=1.5"),
                                           ({"temperature": 0.0}, "temperature=0.0")])
def test_bad_settings_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SoftKMeans(ProtoNet(backbone_kwargs={"hidden": 8}), **kwargs)


def test_cosine_and_embedding_free_models_are_refused():
    with pytest.raises(ValueError, match="distance='cosine'"):
        SoftKMeans(ProtoNet(backbone_kwargs={"hidden": 8}, distance="cosine"))
    with pytest.raises(ValueError, match="no embed"):
        SoftKMeans(torch.nn.Linear(2, 2))


def test_a_model_with_its_own_prototypes_is_refused():
    """HallucinatingProtoNet adds hallucinated embeddings to its prototypes; soft k-means rebuilt them from the
    support alone, so predict --method hallucinating-protonet --transductive ran another model without a word."""
    from fslcourse.methods.hallucinating_protonet import HallucinatingProtoNet
    from fslcourse.methods.metagan import MetaGAN
    from fslcourse.methods.transductive import BatchStatistics

    for wrapped in (lambda m: m, BatchStatistics):
        with pytest.raises(ValueError, match=r"^HallucinatingProtoNet builds its prototypes its own way"):
            SoftKMeans(wrapped(HallucinatingProtoNet()))
    assert SoftKMeans(MetaGAN()).steps == 1  # its classifier is ProtoNet's: accepted, as before


def test_soft_k_means_predict_is_ren_et_als_update_written_out(glyphs):
    """SoftKMeans.predict against Ren et al.'s update by hand: each refined prototype is (support sum + the
    query embeddings weighted by softmax_k(-d^2 / T)) over (n_k + the weights' sum), from the class means, twice,
    at 2 shots (so the support counts matter) and a temperature that is not 1."""
    torch.manual_seed(0)
    model = ProtoNet(backbone_kwargs={"hidden": 8}).double().eval()
    embed = model.embed
    model.embed = lambda x: 100 * embed(x)  # an untrained net's embeddings are tiny: squared distances near 1
    ep = EpisodeSampler(glyphs[2], 4, 2, 3, seed=2).sample()
    ep.support_x, ep.query_x = ep.support_x.double(), ep.query_x.double()
    with torch.no_grad():
        got = SoftKMeans(model, steps=2, temperature=0.5).predict(ep.support_x, ep.support_y, ep.query_x)
        zs, zq = model.embed(ep.support_x), model.embed(ep.query_x)
        support_sum = torch.stack([zs[ep.support_y == k].sum(0) for k in range(4)])  # (4, D)
        c = support_sum / 2
        for _ in range(2):
            w = torch.softmax(-torch.cdist(zq, c) ** 2 / 0.5, dim=1)  # (12, 4): each query over the classes
            c = (support_sum + w.T @ zq) / (2 + w.sum(0))[:, None]
        want = -torch.cdist(zq, c) ** 2
    assert torch.allclose(got, want, atol=1e-9)
    with torch.no_grad():  # the controls: counts of one, or temperature 1, give other logits
        t1 = SoftKMeans(model, steps=2, temperature=1.0).predict(ep.support_x, ep.support_y, ep.query_x)
    assert not torch.allclose(got, t1, atol=1e-3)
