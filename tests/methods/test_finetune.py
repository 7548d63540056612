"""The fine-tuning baseline: W = M initialisation, entropy term, transduction switch, pre-training."""
import math

import pytest
import torch

from fslcourse.data import EpisodeSampler
from fslcourse.methods import get_method
from fslcourse.methods.finetune import FineTune, entropy_regulariser, head_logits
from fslcourse.methods.protonet import protonet_logits


def _episode(split, n_way=5, n_shot=2, n_query=3, seed=0):
    return EpisodeSampler(split, n_way, n_shot, n_query, seed=seed).sample()


def test_mean_init_equals_cosine_nearest_prototype(glyphs):
    """Before any step, W = M, b = 0 with cosine logits is the cosine nearest-prototype classifier."""
    torch.manual_seed(0)
    model = FineTune(n_classes=7, backbone_kwargs={"hidden": 16}, steps=0, scale=10.0).eval()
    ep = _episode(glyphs[2])
    with torch.no_grad():
        got = model.predict(ep.support_x, ep.support_y, ep.query_x)
        z = model.backbone(torch.cat([ep.support_x, ep.query_x]))
        protos = torch.stack([z[:10][ep.support_y == k].mean(0) for k in range(5)])
        want = protonet_logits(z[10:], protos, "cosine", scale=10.0)
    assert torch.allclose(got, want, atol=1e-4)
    assert torch.equal(got.argmax(1), want.argmax(1))


def test_entropy_regulariser_hand_cases():
    assert math.isclose(entropy_regulariser(torch.zeros(1, 2)).item(), math.log(2), rel_tol=1e-6)
    assert math.isclose(entropy_regulariser(torch.zeros(3, 3)).item(), math.log(3), rel_tol=1e-6)
    # p = (1/2, 1/4, 1/4): H = 1/2 ln 2 + 2 * 1/4 ln 4 = 1.5 ln 2
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]])) + 7.0
    assert math.isclose(entropy_regulariser(logits).item(), 1.5 * math.log(2), rel_tol=1e-6)
    # the mean over rows: one certain row (H ~ 0) and one uniform 2-way row (H = ln 2)
    two = torch.tensor([[50.0, 0.0], [1.0, 1.0]])
    assert math.isclose(entropy_regulariser(two).item(), math.log(2) / 2, rel_tol=1e-5)


def test_head_logits_closed_forms():
    f, w, b = torch.randn(4, 3), torch.randn(2, 3), torch.tensor([0.5, -1.0])
    s = torch.tensor(math.log(3.0))
    want = 3.0 * torch.nn.functional.cosine_similarity(f[:, None], w[None], dim=-1) + b
    assert torch.allclose(head_logits(f, w, b, s, cosine=True), want, atol=1e-5)
    assert torch.allclose(head_logits(f, w, b, s, cosine=False), f @ w.T + b)


def test_finetuning_fits_the_support_set_and_transduction_switch(glyphs):
    torch.manual_seed(0)
    ep = _episode(glyphs[2], n_way=5, n_shot=2, n_query=4)
    inductive = FineTune(n_classes=7, backbone_kwargs={"hidden": 16}, steps=100, lr=0.05, init="random").eval()
    # support accuracy is 100% after fine-tuning (the head can separate 10 points in 16-D)
    assert (inductive.predict(ep.support_x, ep.support_y, ep.support_x).argmax(1) == ep.support_y).all()
    # inductive: a query's logits do not depend on the other queries
    a = inductive.predict(ep.support_x, ep.support_y, ep.query_x)
    b = inductive.predict(ep.support_x, ep.support_y, ep.query_x[:3])
    assert torch.allclose(a[:3], b, atol=1e-5)
    # transductive: the entropy term uses all queries, so they do
    trans = FineTune(**{**inductive.config(), "entropy_weight": 1.0}).eval()
    trans.load_state_dict(inductive.state_dict())
    c = trans.predict(ep.support_x, ep.support_y, ep.query_x)
    d = trans.predict(ep.support_x, ep.support_y, ep.query_x[:3])
    assert not torch.allclose(c[:3], d, atol=1e-5)
    # random init is seeded: the same config gives the same predictions
    assert torch.equal(a, inductive.predict(ep.support_x, ep.support_y, ep.query_x))


def test_pretraining_uses_global_labels_and_beats_chance(glyphs):
    """Step 1 on glyphs (60 classes): a few steps of plain classification make 5-way val accuracy rise."""
    from types import SimpleNamespace

    from fslcourse.evaluate import evaluate
    from fslcourse.training import train
    from fslcourse.training.pretrain import ClassBatches, Pretrainer

    assert get_method("finetune") is FineTune and FineTune.needs_grad_at_test
    torch.manual_seed(0)
    before = evaluate(FineTune(n_classes=glyphs[0].n_classes, backbone_kwargs={"hidden": 16}, steps=0), glyphs[1],
                      5, 1, 5, 50, seed=0).accuracy
    model, result = train("finetune", "quick", data=SimpleNamespace(train=glyphs[0], val=glyphs[1]), save=False,
                          device="cpu", progress=False, n_way=30, n_shot=4, steps=40, lr=3e-3, val_every=20,
                          val_episodes=50, schedule="constant", model={"backbone_kwargs": {"hidden": 16}, "steps": 0})
    assert model.classifier.out_features == glyphs[0].n_classes  # the head covers every meta-train class
    assert result.log.accuracy[-1] > 0.3  # 60-class training accuracy, chance 1.7%
    assert result.best_score > 60 and result.best_score > before + 10
    small = FineTune(n_classes=3, backbone_kwargs={"hidden": 4})
    batch = ClassBatches(glyphs[0], 5, 1, torch.Generator().manual_seed(0))()
    with pytest.raises(ValueError, match="head has 3 outputs"):
        Pretrainer(small.backbone, small.classifier).train_step(batch, torch.optim.SGD(small.parameters(), lr=0.1))


def test_bad_arguments():
    with pytest.raises(ValueError, match="init='zeros' is not known"):
        FineTune(init="zeros")
    with pytest.raises(ValueError, match="steps=-1"):
        FineTune(steps=-1)


def test_prototype_init_without_steps_is_protonet_on_the_same_features(glyphs):
    """W = 2M, b = -||c||^2 is the Euclidean nearest prototype: logits differ from ProtoNet's by -||z||^2 per query."""
    from fslcourse.methods import ProtoNet

    torch.manual_seed(0)
    ft = FineTune(n_classes=7, backbone_kwargs={"hidden": 16}, steps=0, init="prototype", cosine=False).eval()
    proto = ProtoNet(backbone_kwargs={"hidden": 16}).eval()
    proto.backbone.load_state_dict(ft.backbone.state_dict())
    ep = EpisodeSampler(glyphs[2], 5, 2, 3, seed=0).sample()
    with torch.no_grad():
        got = ft.predict(ep.support_x, ep.support_y, ep.query_x)
        want = proto.predict(ep.support_x, ep.support_y, ep.query_x)
        z_query = ft.embed(ep.query_x)
    assert torch.allclose(got - z_query.pow(2).sum(1, keepdim=True), want, rtol=1e-4, atol=1e-3)
    assert torch.equal(got.argmax(1), want.argmax(1))


def test_the_entropy_term_is_minimised_with_its_weight(glyphs):
    """Transductive fine-tuning against its objective written out: Adam on CE(support) + w * the mean query
    entropy, -sum p log p, for a few steps (maximising the entropy, a flipped sign, passed the other tests)."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    ep = _episode(glyphs[2], n_way=4, n_shot=2, n_query=3)
    model = FineTune(n_classes=7, backbone_kwargs={"hidden": 16}, steps=5, lr=0.05, entropy_weight=0.7).eval()
    got = model.predict(ep.support_x, ep.support_y, ep.query_x)
    with torch.no_grad():
        zs, zq = model.embed(ep.support_x), model.embed(ep.query_x)
    params = [p.requires_grad_() for p in model.init_head(zs, ep.support_y, 4)]
    opt = torch.optim.Adam(params, lr=0.05)  # the cosine head learns its scale too
    for _ in range(5):
        opt.zero_grad()
        q = head_logits(zq, *params, True)
        entropy = -(F.softmax(q, 1) * F.log_softmax(q, 1)).sum(1).mean()
        (F.cross_entropy(head_logits(zs, *params, True), ep.support_y) + 0.7 * entropy).backward()
        opt.step()
    want = head_logits(zq, *[p.detach() for p in params], True)
    assert torch.allclose(got, want, atol=1e-5)
    inductive = FineTune(**{**model.config(), "entropy_weight": 0.0}).eval()
    inductive.load_state_dict(model.state_dict())
    assert not torch.allclose(got, inductive.predict(ep.support_x, ep.support_y, ep.query_x), atol=1e-4)
