"""Parameter prediction: the cosine prototype classifier at initialisation, weights from the class means only,
logits against a from-scratch computation, gradients into the predictor and the scale, matched recipes."""

import pytest
import torch
import torch.nn.functional as F

from fslcourse.methods import ProtoNet, get_method, prototypes
from fslcourse.methods.parameter_prediction import ParameterPrediction, cosine_logits


def test_at_initialisation_it_is_the_cosine_prototype_classifier(random_episode):
    torch.manual_seed(0)
    m = ParameterPrediction(backbone_kwargs={"hidden": 8}).eval()
    p = ProtoNet(backbone_kwargs={"hidden": 8}, distance="cosine", scale=10.0).eval()
    p.backbone.load_state_dict(m.backbone.state_dict())
    sx, sy, qx, _ = random_episode()
    torch.testing.assert_close(m.predict(sx, sy, qx), p.predict(sx, sy, qx))


def test_logits_match_a_from_scratch_computation_once_the_predictor_is_trained_away_from_identity(random_episode):
    torch.manual_seed(0)
    m = ParameterPrediction(backbone_kwargs={"hidden": 8}, hidden=16).eval()
    with torch.no_grad():
        m.predictor.down.weight.normal_(0, 0.3)
        m.log_scale.fill_(2.0)
    sx, sy, qx, _ = random_episode()
    with torch.no_grad():
        z = m.backbone(torch.cat([sx, qx]))
        a = torch.stack([z[: len(sx)][sy == k].mean(0) for k in range(4)])  # class means
        w = a + m.predictor.down(torch.relu(m.predictor.up(a)))
        q = z[len(sx):]
        want = torch.exp(torch.tensor(2.0)) * (q / q.norm(dim=1, keepdim=True)) @ (w / w.norm(dim=1, keepdim=True)).T
        torch.testing.assert_close(m.predict(sx, sy, qx), want, rtol=1e-5, atol=1e-5)


def test_weights_depend_on_the_class_mean_only_and_classes_are_permutation_equivariant(check_support_permutation):
    torch.manual_seed(0)
    m = ParameterPrediction(backbone_kwargs={"hidden": 8}).eval()
    with torch.no_grad():
        m.predictor.down.weight.normal_(0, 0.3)
    check_support_permutation(m, seed=1, n_way=4, n_shot=3, atol=1e-5)
    # the logits see a class only through its mean: a spread with zero mean within each class changes nothing,
    # a shift of one class's mean changes its logits (averaging psi over the examples would fail the first)
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    z_s, z_q = torch.randn(6, 8), torch.randn(4, 8)
    spread = torch.randn(6, 8)
    spread -= prototypes(spread, y, 2)[y]  # (6, 8): zero mean within each class
    with torch.no_grad():
        base = m.classify_embeddings(z_s, y, z_q)
        torch.testing.assert_close(m.classify_embeddings(z_s + 3 * spread, y, z_q), base, rtol=1e-5, atol=1e-5)
        moved = m.classify_embeddings(z_s + torch.tensor([[1.0] * 8] * 3 + [[0.0] * 8] * 3), y, z_q)
    assert not torch.allclose(moved[:, 0], base[:, 0], atol=1e-3)


def test_gradients_reach_the_backbone_the_predictor_and_the_scale(random_episode):
    torch.manual_seed(0)
    m = ParameterPrediction(backbone_kwargs={"hidden": 8}).train()
    sx, sy, qx, qy = random_episode()
    F.cross_entropy(m.predict(sx, sy, qx), qy).backward()
    assert m.log_scale.grad is not None and m.log_scale.grad != 0
    assert m.predictor.down.weight.grad.abs().sum() > 0  # zero at init, but its gradient is not
    assert all(p.grad is not None for p in m.backbone.parameters() if p.requires_grad)


def test_cosine_logits_are_scaled_cosines():
    z, w = torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    torch.testing.assert_close(cosine_logits(z, w, 10.0), torch.tensor([[6.0, 8.0]]))


@pytest.mark.parametrize("bad", [{"backbone": "nope"}])
def test_a_bad_backbone_is_refused(bad):
    with pytest.raises(ValueError, match=r"^backbone='nope' is not known; use one of conv4, resnet\w*$"):
        ParameterPrediction(**bad)


def test_the_ablation_without_a_predictor_uses_the_class_means_with_the_learned_scale(random_episode):
    torch.manual_seed(0)
    m = get_method("cosine-prototypes")(backbone_kwargs={"hidden": 8}).eval()
    assert m.predictor is None and m.name == "cosine-prototypes" and m.config()["predictor"] is False
    with torch.no_grad():
        m.log_scale.fill_(1.5)
    sx, sy, qx, _ = random_episode()
    with torch.no_grad():
        z = m.backbone(torch.cat([sx, qx]))
        want = cosine_logits(z[len(sx):], prototypes(z[: len(sx)], sy, 4), torch.exp(torch.tensor(1.5)))
        torch.testing.assert_close(m.predict(sx, sy, qx), want)
    own, parent = get_method("cosine-prototypes").RECIPES, ParameterPrediction.RECIPES
    assert own.keys() == parent.keys() and all(own[k].differs_from(parent[k].as_dict()) == [] for k in own)
    assert all("no parameter predictor" in r.note for r in own.values())  # the same training, its own note
