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
