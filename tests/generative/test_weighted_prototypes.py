"""Weighted prototypes: the closed form at λ = 0, 1 and ∞, rejection, and the classifier's agreement with ProtoNet."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fslcourse.data import EpisodeSampler
from fslcourse.evaluate import evaluate
from fslcourse.generative.augment import AugmentedClassifier
from fslcourse.generative.classical import Deformation
from fslcourse.generative.weighted_prototypes import WeightedAugmentation, keep_recognised, weighted_prototypes
from fslcourse.methods import ProtoNet
from fslcourse.methods.base import prototypes


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4), st.integers(1, 3), st.integers(1, 4),
       st.floats(0, 5, allow_nan=False))
def test_weighted_prototypes_is_the_weighted_mean(seed, n_way, k, m, weight):
    g = torch.Generator().manual_seed(seed)
    z_r, z_g = torch.randn(n_way * k, 3, generator=g, dtype=torch.float64), torch.randn(n_way * m, 3, generator=g,
                                                                                        dtype=torch.float64)
    y_r, y_g = torch.arange(n_way).repeat_interleave(k), torch.arange(n_way).repeat_interleave(m)
    got = weighted_prototypes(z_r, y_r, z_g, y_g, n_way, weight)
    for c in range(n_way):
        want = (z_r[y_r == c].sum(0) + weight * z_g[y_g == c].sum(0)) / (k + weight * m)
        torch.testing.assert_close(got[c], want)


def test_the_limits_of_the_weight():
    g = torch.Generator().manual_seed(0)
    z_r, z_g = torch.randn(6, 4, generator=g), torch.randn(9, 4, generator=g)
    y_r, y_g = torch.arange(3).repeat_interleave(2), torch.arange(3).repeat_interleave(3)
    torch.testing.assert_close(weighted_prototypes(z_r, y_r, z_g, y_g, 3, 0.0), prototypes(z_r, y_r, 3))
    torch.testing.assert_close(weighted_prototypes(z_r, y_r, z_g, y_g, 3, 1.0),
                               prototypes(torch.cat([z_r, z_g]), torch.cat([y_r, y_g]), 3))
    torch.testing.assert_close(weighted_prototypes(z_r, y_r, z_g, y_g, 3, 1e9), prototypes(z_g, y_g, 3), atol=1e-4,
                               rtol=0)
    # a class whose generated examples were all rejected keeps its real prototype
    torch.testing.assert_close(weighted_prototypes(z_r, y_r, z_g[3:], y_g[3:], 3, 1.0)[0], z_r[:2].mean(0))
    for bad in (-0.5, float("nan")):
        with pytest.raises(ValueError, match="weight"):
            weighted_prototypes(z_r, y_r, z_g, y_g, 3, bad)


def test_rejection_keeps_exactly_the_generated_points_nearest_their_own_prototype():
    protos = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    z = torch.tensor([[1.0, 0.0], [6.0, 0.0], [9.0, 1.0], [4.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1])
    assert keep_recognised(z, y, protos).tolist() == [True, False, True, False]


class WrongClass:
    """A feature-space generator that draws every class's samples at the *next* class's prototype."""

    space, source = "feature", None

    def generate(self, support, support_y, n_per_class, seed):
        n_way = int(support_y.max()) + 1
        y = torch.arange(n_way).repeat_interleave(n_per_class)
        return prototypes(support, support_y, n_way)[(y + 1) % n_way], y


class Exact:
    """Samples exactly at their own class's prototype."""

    space, source = "feature", None

    def generate(self, support, support_y, n_per_class, seed):
        n_way = int(support_y.max()) + 1
        y = torch.arange(n_way).repeat_interleave(n_per_class)
        return prototypes(support, support_y, n_way)[y], y


def test_at_weight_one_it_is_plain_augmentation_and_at_weight_zero_it_is_protonet(glyphs):
    _, _, test = glyphs
    torch.manual_seed(0)
    net = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    gen = Deformation()
    plain = evaluate(AugmentedClassifier(net, gen, 3), test, 4, 1, 2, 6, seed=1)
    weighted = evaluate(WeightedAugmentation(net, gen, 3, weight=1.0), test, 4, 1, 2, 6, seed=1)
    assert weighted.episode_accuracies == pytest.approx(plain.episode_accuracies)
    alone = evaluate(net, test, 4, 1, 2, 6, seed=1)
    zero = evaluate(WeightedAugmentation(net, gen, 3, weight=0.0), test, 4, 1, 2, 6, seed=1)
    assert zero.episode_accuracies == pytest.approx(alone.episode_accuracies)
    # accuracies are coarse (8 queries an episode): the logits themselves, with a control that augmentation moves them
    ep = EpisodeSampler(test, 4, 1, 2, seed=1).sample()
    logits = {name: m.predict(ep.support_x, ep.support_y, ep.query_x) for name, m in (
        ("plain", AugmentedClassifier(net, gen, 3, seed=0)), ("one", WeightedAugmentation(net, gen, 3, weight=1.0, seed=0)),
        ("alone", net), ("zero", WeightedAugmentation(net, gen, 3, weight=0.0, seed=0)))}
    assert not logits["one"].requires_grad and not logits["zero"].requires_grad  # predict runs without autograd
    scale = logits["alone"].abs().max()  # an untrained net's squared distances are small: compare relative to them
    torch.testing.assert_close(logits["one"] / scale, logits["plain"] / scale, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(logits["zero"] / scale, logits["alone"] / scale, rtol=1e-4, atol=1e-5)
    assert (logits["plain"] - logits["alone"]).abs().max() > 0.05 * scale  # control: the generated samples count


def test_rejection_undoes_a_generator_that_draws_the_wrong_class(glyphs):
    _, _, test = glyphs
    torch.manual_seed(0)
    net = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    alone = evaluate(net, test, 4, 1, 3, 8, seed=1)
    wrong = evaluate(WeightedAugmentation(net, WrongClass(), 2), test, 4, 1, 3, 8, seed=1)
    assert wrong.accuracy < alone.accuracy - 20  # samples of the wrong class drag every prototype away
    rejecting = WeightedAugmentation(net, WrongClass(), 2, reject=True)
    fixed = evaluate(rejecting, test, 4, 1, 3, 8, seed=1)
    assert rejecting.kept == [0.0] * 8 and fixed.episode_accuracies == pytest.approx(alone.episode_accuracies)
    keeping = WeightedAugmentation(net, Exact(), 2, reject=True)
    same = evaluate(keeping, test, 4, 1, 3, 8, seed=1)
    assert keeping.kept == [1.0] * 8 and same.episode_accuracies == pytest.approx(alone.episode_accuracies)


def test_bad_arguments_are_refused_before_any_episode():
    net = ProtoNet(backbone_kwargs={"hidden": 8})
    with pytest.raises(ValueError, match="weight"):
        WeightedAugmentation(net, Deformation(), 2, weight=-1)
    with pytest.raises(ValueError, match="n_generated"):
        WeightedAugmentation(net, Deformation(), 0)
    with pytest.raises(ValueError, match="ProtoNet"):
        WeightedAugmentation(torch.nn.Linear(2, 2), Deformation(), 2)


def test_prototype_drag_is_the_episode_projected_linearly(glyphs):
    """The figure's points: PCA is linear, so each 2-D prototype is the mean of its class's 2-D support points (the
    augmented one, the weighted mean with the generated points); its accuracies are ProtoNet's and the weighted
    classifier's on the same episode."""
    from fslcourse.generative.weighted_prototypes import prototype_drag
    from fslcourse.widgets.plotting import draw_prototype_drag

    _, _, test = glyphs
    torch.manual_seed(0)
    net = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    ep = EpisodeSampler(test, 4, 2, 3, seed=1).sample()
    drag = prototype_drag(net, Deformation(), ep, 3, seed=0, weight=0.5)
    assert drag["support"].shape == (8, 2) and drag["generated"].shape == (12, 2) and drag["query"].shape == (12, 2)
    for k in range(4):
        real = drag["support"][drag["support_y"] == k]
        fake = drag["generated"][drag["generated_y"] == k]
        torch.testing.assert_close(drag["old"][k], real.mean(0), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(drag["new"][k], (real.sum(0) + 0.5 * fake.sum(0)) / (len(real) + 0.5 * len(fake)),
                                   rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        alone = (net.predict(ep.support_x, ep.support_y, ep.query_x).argmax(1) == ep.query_y).float().mean().item()
        weighted = WeightedAugmentation(net, Deformation(), 3, weight=0.5, seed=0)
        mixed = (weighted.predict(ep.support_x, ep.support_y, ep.query_x).argmax(1) == ep.query_y).float().mean().item()
    assert drag["accuracy_old"] == pytest.approx(100 * alone) and drag["accuracy_new"] == pytest.approx(100 * mixed)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    draw_prototype_drag(ax, drag)  # one arrow per class, from the real prototype to the augmented one
    arrows = [a for a in ax.texts if getattr(a, "arrow_patch", None) is not None]
    assert len(arrows) == 4 and ax.get_title().startswith(f"queries right: {drag['accuracy_old']:.0f}%")
    plt.close(fig)
