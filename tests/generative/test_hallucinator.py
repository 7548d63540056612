"""The feature hallucinator: residual identity, seeds taken in turn, seeded noise, and meta-training that helps."""
import pytest
import torch

from fslcourse.generative.augment import AugmentedClassifier, FeatureSplit, ModelGenerator
from fslcourse.generative.hallucinator import RECIPES, FeatureHallucinator
from fslcourse.training.generators import train_hallucinator


def _clusters(seed=0, n_classes=60, d=8):
    g = torch.Generator().manual_seed(seed)
    centres = 2 * torch.randn(n_classes, 1, d, generator=g)
    return centres, centres + torch.randn(n_classes, 20, d, generator=g)  # (classes, examples, D): overlapping


def test_zero_residual_copies_the_seeds_in_turn():
    torch.manual_seed(0)
    model = FeatureHallucinator(feature_dim=4, z_dim=3, hidden=8)
    torch.nn.init.zeros_(model.net[-1].weight)
    torch.nn.init.zeros_(model.net[-1].bias)
    support = torch.arange(20.0).reshape(5, 4)  # (n_way * n_shot, D): class 0 has rows 0, 1; class 1 rows 2, 3, 4
    support_y = torch.tensor([0, 0, 1, 1, 1])
    gen, y = model.generate(support, support_y, 4, torch.Generator().manual_seed(0))
    assert y.tolist() == [0] * 4 + [1] * 4
    assert torch.equal(gen, support[[0, 1, 0, 1, 2, 3, 4, 2]])


def test_query_accuracy_against_prototypes_computed_by_hand():
    """1-shot, m hallucinations per class: with a zero residual they copy the support, so both accuracies are the
    nearest-support accuracy; with a constant residual b, class k's prototype is s_k + m / (m + 1) * b."""
    from fslcourse.data.episodes import Episode

    torch.manual_seed(0)
    model = FeatureHallucinator(feature_dim=4, z_dim=3, hidden=8)
    torch.nn.init.zeros_(model.net[-1].weight)
    torch.nn.init.zeros_(model.net[-1].bias)
    support = torch.eye(4)[:3] * 3  # (n_way * n_shot, D)
    query = torch.tensor([[3.0, 0.2, 0, 0], [0, 2.5, 0, 0], [0.1, 0, 2.0, 0], [2.0, 0.1, 0, 0], [0, 0, 0.1, 0]])
    query_y = torch.tensor([0, 1, 2, 1, 0])  # (n_query_total,)
    ep = Episode(support_x=support, support_y=torch.arange(3), query_x=query, query_y=query_y,
                 classes=torch.arange(3), n_way=3, n_shot=1, n_query=2)

    def by_hand(protos):
        return 100 * (torch.cdist(query, protos).argmin(1) == query_y).float().mean().item()
    assert by_hand(support) == pytest.approx(60.0) and model.query_accuracy(ep, 5) == (by_hand(support),) * 2
    b = torch.tensor([-60.0, 0, 0, 0])  # every prototype moves by -50 e_0: class 0 (at 3 e_0) becomes the nearest
    model.net[-1].bias.data.copy_(b)
    with_gen, real = model.query_accuracy(ep, 5, torch.Generator().manual_seed(0))
    assert real == by_hand(support) and with_gen == pytest.approx(by_hand(support + 5 / 6 * b)) == pytest.approx(40.0)


def test_seeded_noise_is_reproducible():
    torch.manual_seed(0)
    model = FeatureHallucinator(feature_dim=4, z_dim=3, hidden=8)
    support, support_y = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])
    a, _ = model.generate(support, support_y, 3, torch.Generator().manual_seed(1))
    b, _ = model.generate(support, support_y, 3, torch.Generator().manual_seed(1))
    c, _ = model.generate(support, support_y, 3, torch.Generator().manual_seed(2))
    assert a.shape == (9, 4) and torch.equal(a, b) and not torch.equal(a, c)


def test_meta_training_lowers_the_episode_loss_and_hallucinations_stay_in_class():
    torch.set_num_threads(1)
    centres, feats = _clusters()
    torch.manual_seed(0)
    model = FeatureHallucinator(feature_dim=8, hidden=32)
    model.scale.fill_(feats.pow(2).mean().sqrt().item())
    hist = train_hallucinator(model, FeatureSplit("train", feats[:40]),
                              RECIPES["quick"].replace(steps=200, n_way=10, lr=3e-3), progress=False)
    assert hist["split"] == "train" and hist["steps"] == 200
    assert sum(hist["loss"][-20:]) < sum(hist["loss"][:20])
    # novel classes (never trained on): hallucinated features are nearer their own class centre than any other
    held_out = feats[40:45]  # (5, 20, D)
    support, support_y = held_out[:, 0], torch.arange(5)
    gen, y = model.generate(support, support_y, 10, torch.Generator().manual_seed(0))
    nearest = torch.cdist(gen, centres[40:45, 0]).argmin(1)
    assert (nearest == y).float().mean() >= 0.8


def test_feature_generator_refuses_a_different_backbone():
    from fslcourse.methods.protonet import ProtoNet

    torch.manual_seed(0)
    method = ProtoNet(backbone_kwargs={"hidden": 8})
    gen = ModelGenerator(FeatureHallucinator(feature_dim=8), space="feature", backbone_fingerprint="0" * 16)
    with pytest.raises(ValueError, match="trained on backbone 0000000000000000"):
        AugmentedClassifier(method, gen, 5)
