"""Fréchet distance and diversity against scipy and closed forms."""
import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import torch

from fslcourse.generative.metrics import frechet_distance, mean_pairwise_distance, per_class_quality


def _scipy_frechet(a, b):
    a, b = a.double().numpy(), b.double().numpy()
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.parametrize("n, d", [(200, 5), (30, 8)])
def test_frechet_matches_scipy(n, d):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, d, generator=g) @ torch.randn(d, d, generator=g)
    b = 2 + 0.5 * torch.randn(n, d, generator=g)
    assert frechet_distance(a, b) == pytest.approx(_scipy_frechet(a, b), rel=1e-5)


def test_frechet_closed_forms():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(50, 4, generator=g)
    shift = torch.tensor([1.0, -2.0, 0.5, 0.0])
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift.pow(2).sum()), rel=1e-6)
    # 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2
    x = torch.randn(1000, 1, generator=g)
    x = (x - x.mean()) / x.std()
    assert frechet_distance(x, 3 * x + 2) == pytest.approx(4 + 4, rel=1e-6)
    # rank-deficient covariances (fewer rows than dims) still give a finite, symmetric answer
    r, s = torch.randn(5, 16, generator=g), torch.randn(6, 16, generator=g)
    assert frechet_distance(r, s) == pytest.approx(frechet_distance(s, r), rel=1e-4)
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(r, s[:, :3])


def test_frechet_is_never_negative_and_refuses_a_single_row():
    """A squared distance: rounding in the square roots of a rank-deficient covariance leaves tr(S_r + S_g) - 2 tr(...)
    a hair below zero for a set against itself (to -2.5e-6 here), whose square root a student takes as NaN. One row
    has no covariance (torch.cov gives NaN): each side is refused, by name."""
    g = torch.Generator().manual_seed(0)
    for shape in [(5, 16), (20, 64), (50, 4)]:
        for _ in range(5):
            a = torch.randn(*shape, generator=g)
            assert 0 <= frechet_distance(a, a) < 1e-5
    a = torch.randn(4, 3, generator=g)
    with pytest.raises(ValueError, match="at least 2 rows, got 1 real and 4 generated"):
        frechet_distance(a[:1], a)
    with pytest.raises(ValueError, match="at least 2 rows, got 4 real and 1 generated"):
        frechet_distance(a, a[:1])


def test_diversity_is_the_mean_pairwise_distance():
    g = torch.Generator().manual_seed(2)
    f = torch.randn(7, 3, generator=g)
    want = np.mean([float((f[i] - f[j]).norm()) for i, j in itertools.combinations(range(7), 2)])
    assert mean_pairwise_distance(f) == pytest.approx(want, rel=1e-6)
    assert mean_pairwise_distance(2 * f) == pytest.approx(2 * want, rel=1e-6)
    assert mean_pairwise_distance(f[:1].expand(4, 3)) == 0.0


def test_per_class_quality_separates_classes():
    g = torch.Generator().manual_seed(3)
    real = torch.cat([torch.randn(20, 4, generator=g), 5 + torch.randn(20, 4, generator=g)])
    real_y = torch.arange(2).repeat_interleave(20)
    gen = torch.cat([torch.randn(10, 4, generator=g), 5 + 0.1 * torch.randn(10, 4, generator=g)])
    gen_y = torch.arange(2).repeat_interleave(10)
    q = per_class_quality(None, real, real_y, gen, gen_y, embedded=True)
    assert len(q["frechet"]) == 2 and q["frechet"][0] < q["frechet"][1]  # class 1's samples have collapsed
    assert q["diversity_generated"][1] < 0.2 * q["diversity_real"][1]


def test_per_class_quality_embeds_images_with_its_backbone():
    """Given images (``embedded=False``, the default), both sets go through ``embed``: the same numbers as passing
    the embeddings themselves."""
    g = torch.Generator().manual_seed(4)
    weight = torch.randn(784, 3, generator=g)

    def embed(x):
        return x.flatten(1) @ weight  # (n, 3)

    real, gen = torch.rand(12, 1, 28, 28, generator=g), torch.rand(8, 1, 28, 28, generator=g)
    real_y, gen_y = torch.arange(2).repeat(6), torch.arange(2).repeat_interleave(4)
    want = per_class_quality(None, embed(real), real_y, embed(gen), gen_y, embedded=True)
    got = per_class_quality(embed, real, real_y, gen, gen_y)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-9)


def test_classifier_score_at_its_known_values():
    from fslcourse.generative.metrics import classifier_score

    assert classifier_score(torch.eye(4)) == pytest.approx(4.0)  # each sample confidently its own class: n_way
    assert classifier_score(torch.full((6, 3), 1 / 3)) == pytest.approx(1.0)  # every sample ambiguous
    assert classifier_score(torch.eye(3)[[0, 0, 0]]) == pytest.approx(1.0)  # confident, but all alike
    p = torch.tensor([[0.9, 0.1], [0.1, 0.9]], dtype=torch.float64)  # the marginal is uniform: exp of the mean KL to it
    kl = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert classifier_score(p) == pytest.approx(math.exp(kl), rel=1e-9)


class _Copies:
    """Generates, for each class, copies of a support drawing: of its own (``shift=0``) or the next class's."""

    def __init__(self, shift):
        self.shift = shift

    def generate(self, support_x, support_y, n_per_class, seed):
        n_way = int(support_y.max()) + 1
        source = torch.stack([support_x[support_y == (k + self.shift) % n_way][0] for k in range(n_way)])
        return source.repeat_interleave(n_per_class, 0), torch.arange(n_way).repeat_interleave(n_per_class)


def test_nearest_prototype_accuracy_counts_generated_drawings_by_their_class(glyphs):
    from fslcourse.generative.metrics import nearest_prototype_accuracy
    from fslcourse.methods import ProtoNet

    torch.manual_seed(0)
    backbone = ProtoNet(backbone_kwargs={"hidden": 8}).backbone
    own = nearest_prototype_accuracy(_Copies(0), backbone, glyphs[2], n_way=4, n_generated=3, n_episodes=4)
    wrong = nearest_prototype_accuracy(_Copies(1), backbone, glyphs[2], n_way=4, n_generated=3, n_episodes=4)
    assert own["generated"] == 100 and wrong["generated"] == 0  # a copy of a support drawing sits on its prototype
    assert own["real"] == wrong["real"] and own["chance"] == 25 and own["episodes"] == 4
    assert own["score"] >= 1 - 1e-9 and wrong["score"] >= 1 - 1e-9  # a classifier score is at least 1


class _Rolled:
    """Each class's support drawings in turn, moved 3 pixels to the right (no randomness); records the seeds."""

    def __init__(self):
        self.seeds = []

    def generate(self, support_x, support_y, n_per_class, seed):
        from fslcourse.generative.augment import sources_in_turn

        self.seeds.append(seed)
        x, y = sources_in_turn(support_x, support_y, n_per_class)
        return x.roll(3, -1), y


def test_nearest_prototype_accuracy_recomputed_episode_by_episode(glyphs):
    """Each number against its definition on the same seeded episodes: the real support prototypes classify the
    generated and the real query drawings, and each score is classifier_score of the ProtoNet posterior over the
    episode's classes (softmax across classes, of the logits, not of their negatives or across queries)."""
    from fslcourse.data import EpisodeSampler
    from fslcourse.generative.metrics import classifier_score, nearest_prototype_accuracy
    from fslcourse.methods.base import prototypes
    from fslcourse.methods.protonet import protonet_logits

    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 16))  # scaled so that posteriors are
    with torch.no_grad():  # neither uniform nor one-hot (an untrained Conv-4's are uniform: every score is 1)
        backbone[1].weight.mul_(0.1 / backbone[1].weight.std())
    got = nearest_prototype_accuracy(_Rolled(), backbone, glyphs[2], n_way=4, n_shot=2, n_generated=3, n_episodes=3,
                                     seed=5)
    sampler, rolled = EpisodeSampler(glyphs[2], 4, 2, 3, seed=5), _Rolled()
    acc, acc_real, score, score_real = [], [], [], []
    with torch.no_grad():
        for _ in range(3):
            ep = sampler.sample()
            protos = prototypes(backbone(ep.support_x), ep.support_y, 4)
            gx, gy = rolled.generate(ep.support_x, ep.support_y, 3, 0)
            logits, logits_real = protonet_logits(backbone(gx), protos), protonet_logits(backbone(ep.query_x), protos)
            acc.append(100 * (logits.argmax(1) == gy).float().mean().item())
            acc_real.append(100 * (logits_real.argmax(1) == ep.query_y).float().mean().item())
            score.append(classifier_score(logits.softmax(1)))
            score_real.append(classifier_score(logits_real.softmax(1)))
    assert got["generated"] == pytest.approx(np.mean(acc)) and got["real"] == pytest.approx(np.mean(acc_real))
    assert got["score"] == pytest.approx(np.mean(score), rel=1e-6)
    assert got["score_real"] == pytest.approx(np.mean(score_real), rel=1e-6)
    assert 1.5 < got["score"] < 3.5 and 1.5 < got["score_real"] < 3.5  # neither end: posteriors can be told apart


def test_nearest_prototype_accuracy_seeds_each_episode_apart_and_judges_in_eval_mode(glyphs):
    """Every episode's samples get a seed of their own, another set for another ``seed``; a backbone handed over in
    training mode is put in eval mode (its BatchNorm running statistics are neither used nor changed)."""
    from fslcourse.generative.metrics import nearest_prototype_accuracy
    from fslcourse.methods import ProtoNet

    torch.manual_seed(0)
    backbone = ProtoNet(backbone_kwargs={"hidden": 8}).backbone
    with torch.no_grad():  # running statistics away from their start, so that eval and train modes differ
        backbone.train()(torch.rand(16, 1, 28, 28))
    first, second = _Rolled(), _Rolled()
    in_eval = nearest_prototype_accuracy(first, backbone.eval(), glyphs[2], n_way=4, n_episodes=4, seed=0)
    nearest_prototype_accuracy(second, backbone, glyphs[2], n_way=4, n_episodes=4, seed=1)
    assert len(set(first.seeds)) == 4 and not set(first.seeds) & set(second.seeds)
    state = {k: v.clone() for k, v in backbone.state_dict().items()}
    in_train = nearest_prototype_accuracy(_Rolled(), backbone.train(), glyphs[2], n_way=4, n_episodes=4, seed=0)
    assert all(torch.equal(v, backbone.state_dict()[k]) for k, v in state.items())
    assert in_train == in_eval
