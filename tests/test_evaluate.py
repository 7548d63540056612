"""evaluate(): the CI formula against scipy, determinism, and an oracle's 100%."""
import math

import pytest
import torch

from fslcourse.evaluate import evaluate, mean_ci95
from fslcourse.methods import FewShotClassifier, PixelPrototype


def test_ci95_matches_scipy_normal_interval():
    import scipy.stats as scipy_stats  # a declared dependency: missing, this fails, not skips
    values = [0.2, 0.9, 0.5, 0.7, 0.6, 1.0, 0.3]
    mean, half = mean_ci95(values)
    lo, hi = scipy_stats.norm.interval(0.95, loc=sum(values) / 7, scale=scipy_stats.sem(values))
    assert mean == pytest.approx((lo + hi) / 2) and half == pytest.approx((hi - lo) / 2)


def test_ci95_hand_case_and_errors():
    mean, half = mean_ci95([0.0, 1.0])
    assert mean == 0.5 and half == pytest.approx(1.959964 * math.sqrt(0.5) / math.sqrt(2), rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 values, got 1"):
        mean_ci95([1.0])


class Oracle(FewShotClassifier):
    """Knows the answer: predicts query label i // n_query (class-major order)."""

    trainable = False

    def predict(self, support_x, support_y, query_x):
        n_way = self.n_way_of(support_y)
        n_query = query_x.shape[0] // n_way
        return torch.nn.functional.one_hot(torch.arange(n_way).repeat_interleave(n_query), n_way).float()


def test_oracle_scores_100_and_same_seed_same_result(glyphs):
    res = evaluate(Oracle(), glyphs[2], 5, 1, 3, 10, seed=0)
    assert res.accuracy == 100.0 and res.ci95 == 0.0
    a = evaluate(PixelPrototype(), glyphs[2], 5, 1, 3, 20, seed=5)
    b = evaluate(PixelPrototype(), glyphs[2], 5, 1, 3, 20, seed=5)
    assert a.episode_accuracies == b.episode_accuracies
    assert "5-way 1-shot" in str(a)


def test_too_few_episodes():
    from fslcourse.data import make_glyph_split
    with pytest.raises(ValueError, match="n_episodes=1"):
        evaluate(PixelPrototype(), make_glyph_split(6, 4), 2, 1, 1, n_episodes=1)


def test_nan_weights_fail_instead_of_scoring_chance(glyphs):
    model = PixelPrototype()

    class Corrupt(FewShotClassifier):
        trainable = False

        def predict(self, support_x, support_y, query_x):
            return model.predict(support_x, support_y, query_x) * float("nan")  # what NaN weights give

    with pytest.raises(ValueError, match=r"the model's logits are not finite \(NaN/inf\) on episode 0; its weights "
                                         r"may be corrupt: retrain or reload it"):
        evaluate(Corrupt(), glyphs[2], 5, 1, 3, 10, seed=0)


def test_nan_weights_in_a_real_network(glyphs):
    from fslcourse.methods import ProtoNet

    net = ProtoNet()
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(float("nan"))
    with pytest.raises(ValueError, match="logits are not finite"):
        evaluate(net, glyphs[2], 5, 1, 3, 4, seed=0)


def _bad_split(glyphs, transform):
    """The meta-test glyph split with its images passed through ``transform`` (no longer model inputs)."""
    from fslcourse.data import ImageSplit

    class BadSplit(ImageSplit):
        def get(self, class_ids, example_ids):
            return transform(super().get(class_ids, example_ids))

    s = glyphs[2]
    return BadSplit(s.name, s.images, s.base_names, s.alphabets, s.rotations)


@pytest.mark.parametrize("transform, message", [
    (lambda x: x * 2.0, r"episode 0: support_x has values in \[0, 2\], not \[0, 1\]"),
    (lambda x: x.masked_fill(x > 0.5, float("nan")), "episode 0: support_x holds NaN or inf pixels"),
    (lambda x: (x * 255).to(torch.uint8), "episode 0: support_x is torch.uint8, not float images in"),
    (lambda x: x - 0.5, r"episode 0: support_x has values in \[-0.5, 0.5\], not \[0, 1\]"),  # zero-centred images
    # grid (n_way, n_shot + n_query, ...): only the query columns out of range, so query_x's own check must fire
    (lambda x: torch.cat([x[:, :1], x[:, 1:] * 2.0], 1), r"episode 0: query_x has values in \[0, 2\], not \[0, 1\]"),
])
def test_episode_images_are_checked_before_predict(glyphs, transform, message):
    with pytest.raises(ValueError, match=message):
        evaluate(Oracle(), _bad_split(glyphs, transform), 5, 1, 3, 4, seed=0)


def test_logits_of_the_wrong_shape_or_dtype(glyphs):
    class WrongShape(Oracle):
        def predict(self, support_x, support_y, query_x):
            return super().predict(support_x, support_y, query_x)[:, :3]

    class Labels(Oracle):
        def predict(self, support_x, support_y, query_x):
            return super().predict(support_x, support_y, query_x).long()

    with pytest.raises(ValueError, match=r"logits of shape \(15, 3\), expected \(n_way \* n_query, n_way\) = \(15, 5\)"):
        evaluate(WrongShape(), glyphs[2], 5, 1, 3, 4, seed=0)
    with pytest.raises(ValueError, match="predict returned torch.int64; it must return float logits"):
        evaluate(Labels(), glyphs[2], 5, 1, 3, 4, seed=0)


def test_result_says_its_split_and_the_alphabets_left_out(glyphs):
    import numpy as np

    from fslcourse.data import make_glyph_split

    assert evaluate(Oracle(), glyphs[1], 5, 1, 3, 4, seed=0).split == "val"
    split = make_glyph_split(10, 4, seed=2, n_alphabets=4, name="test")  # styles of 3, 3, 2 and 2 classes
    res = evaluate(Oracle(), split, np.int64(3), 1, 1, np.int64(4), seed=0, within_alphabet=True)
    assert res.split == "test" and res.alphabets_left_out == ["style2", "style3"] and res.n_episodes == 4
    assert evaluate(Oracle(), split, 3, 1, 1, 4, seed=0).alphabets_left_out == []


def test_a_vinyals_checkpoint_is_never_evaluated_on_the_alphabet_split(glyphs):
    """The Vinyals split trains on 236 characters of the alphabet split's meta-test: that evaluation is refused."""
    from fslcourse.data.splits import ImageSplit

    test = glyphs[2]
    as_split = {p: ImageSplit(test.name, test.images, test.base_names, test.alphabets, test.rotations, p)
                for p in ("alphabet", "vinyals")}
    model = PixelPrototype()
    model.checkpoint_source = {"file": "x.pt", "sha256": "0" * 64, "split": "vinyals"}
    with pytest.raises(ValueError, match="trained on the Vinyals split.*evaluate it on load_omniglot\\(split='vinyals'\\)"):
        evaluate(model, as_split["alphabet"], 5, 1, 2, 3)
    assert evaluate(model, as_split["vinyals"], 5, 1, 2, 3).split_protocol == "vinyals"
    model.checkpoint_source["split"] = "alphabet"  # the Vinyals test characters are all alphabet-split meta-test ones
    assert evaluate(model, as_split["vinyals"], 5, 1, 2, 3).n_episodes == 3


def test_a_checkpoint_from_before_the_split_field_counts_as_trained_on_the_alphabet_split(glyphs):
    """A source without ``split`` (written before the field) was trained on the alphabet split: it is refused on
    Vinyals validation episodes, whose characters its meta-train alphabets hold, as one that says so is."""
    from fslcourse.data.splits import ImageSplit

    s = glyphs[2]
    vinyals_val = ImageSplit("val", s.images, s.base_names, s.alphabets, s.rotations, "vinyals")
    model = PixelPrototype()
    for source in ({"file": "x.pt", "sha256": "0" * 64}, {"file": "x.pt", "sha256": "0" * 64, "split": "alphabet"}):
        model.checkpoint_source = source
        with pytest.raises(ValueError, match="trained on the alphabet split, whose meta-train alphabets hold most"):
            evaluate(model, vinyals_val, 5, 1, 2, 3)


def test_a_wrapped_model_in_eval_mode_stays_in_eval_mode(glyphs):
    """A fresh wrapper (train mode) around an eval-mode ProtoNet: evaluating it must not switch the ProtoNet's
    BatchNorm to batch statistics, which would silently change every later embedding of that model."""
    from fslcourse.generative.augment import AugmentedClassifier
    from fslcourse.generative.classical import CopyNoise
    from fslcourse.methods import ProtoNet

    torch.manual_seed(0)
    protonet = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    wrapped = AugmentedClassifier(protonet, CopyNoise(), 1, seed=0)
    assert wrapped.training and not protonet.training
    x = glyphs[2].get(torch.arange(4), torch.zeros(4, 1, dtype=torch.long)).flatten(0, 1)  # (4, 1, 28, 28)
    before = protonet.embed(x)
    evaluate(wrapped, glyphs[2], n_way=3, n_shot=1, n_query=1, n_episodes=2)
    assert wrapped.training, "the wrapper's own mode is restored"
    assert not any(m.training for m in protonet.modules()), "the wrapped ProtoNet was left in train mode"
    assert torch.equal(protonet.embed(x), before)


def test_a_model_in_training_mode_is_evaluated_in_eval_mode_and_left_as_it_was(glyphs):
    """Without method.eval() a fresh ProtoNet scored 63% instead of 39% (batch statistics of each episode) and
    its running statistics were overwritten; no test noticed, as every model tested was already in eval mode."""
    import copy

    from fslcourse.methods.protonet import ProtoNet

    torch.manual_seed(0)
    net = ProtoNet(backbone_kwargs={"hidden": 8}).train()
    frozen = copy.deepcopy(net).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    a = evaluate(net, glyphs[2], 5, 1, 3, 10, seed=0)
    b = evaluate(frozen, glyphs[2], 5, 1, 3, 10, seed=0)
    assert a.episode_accuracies == b.episode_accuracies and net.training and not frozen.training
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # running statistics untouched


def test_a_name_a_class_or_the_whole_dataset_is_refused_in_one_line(glyphs):
    from types import SimpleNamespace

    model = PixelPrototype()
    for method, says in (("protonet", "method='protonet' is a name or a class"),
                         (PixelPrototype, "method='PixelPrototype' is a name or a class")):
        with pytest.raises(ValueError, match=says):
            evaluate(method, glyphs[2], 3, 1, 1, 2)
    data = SimpleNamespace(train=glyphs[0], val=glyphs[1], test=glyphs[2])
    with pytest.raises(ValueError, match="split must be one split of images, e.g. data.test .*got the SimpleNamespace"):
        evaluate(model, data, 3, 1, 1, 2)
    with pytest.raises(ValueError, match="device='gpu' is not a device"):
        evaluate(model, glyphs[2], 3, 1, 1, 2, device="gpu")


def test_a_nan_is_refused_not_averaged():
    with pytest.raises(ValueError, match="1 of the 3 values are NaN or infinite"):
        mean_ci95([1.0, float("nan"), 0.5])


def test_the_episode_digest_changes_with_the_images_not_only_the_classes(glyphs):
    """Two copies of a split with the same classes and other images draw the same classes from the same seed; their
    results must not pair, so the digest covers the images (a digest of the classes alone called them the same)."""
    from fslcourse.data import EpisodeSampler, ImageSplit

    s = glyphs[2]
    other = ImageSplit(s.name, 255 - s.images, s.base_names, s.alphabets, s.rotations, s.protocol)  # ink inverted
    a, b = (EpisodeSampler(split, 5, 1, 2, seed=0) for split in (s, other))
    assert all(torch.equal(a.sample().classes, b.sample().classes) for _ in range(3))  # same classes drawn
    digest = {name: evaluate(PixelPrototype(), split, 5, 1, 2, 3, seed=seed).episodes_sha256
              for name, split, seed in (("s", s, 0), ("again", s, 0), ("other images", other, 0), ("seed 1", s, 1))}
    assert digest["s"] == digest["again"] and len(set(digest.values())) == 3


def test_evaluate_builds_its_episodes_as_rotation_says_and_the_record_says_so(glyphs):
    """``evaluate(rotation=...)`` scores, episode for episode, the sampler's episodes of that construction; its
    record's protocol names the construction, and a default result's record and dict are as they always were."""
    from fslcourse.data import EpisodeSampler, ImageSplit
    from fslcourse.results import result_record

    s = glyphs[2]
    turned = ImageSplit(s.name, s.images, s.base_names, s.alphabets, (0, 1, 2, 3), s.protocol)
    model = PixelPrototype()
    kept = dict(config={}, seed=0, device="cpu", profile="quick")
    default = evaluate(model, turned, 5, 1, 2, 6, seed=0)
    assert default.rotation == "classes" and "rotation" not in default.as_dict()
    assert "rotation" not in result_record("pixel", default, **kept)["protocol"]
    for rotation in ("per-class", "per-episode", "upright"):
        res = evaluate(model, turned, 5, 1, 2, 6, seed=0, rotation=rotation)
        sampler = EpisodeSampler(turned, 5, 1, 2, seed=0, rotation=rotation)
        own = []
        for _ in range(6):
            ep = sampler.sample()
            own.append((model.predict(ep.support_x, ep.support_y, ep.query_x).argmax(1) == ep.query_y).float().mean()
                       .item() * 100)
        assert res.episode_accuracies == own and res.rotation == rotation and res.as_dict()["rotation"] == rotation
        assert res.episodes_sha256 != default.episodes_sha256 and f"({rotation} rotation)" in str(res)
        assert result_record("pixel", res, **kept)["protocol"]["rotation"] == rotation


def test_a_bad_rotation_is_refused_before_any_episode(glyphs):
    class Never(FewShotClassifier):
        trainable = False

        def predict(self, support_x, support_y, query_x):
            raise AssertionError("an episode was measured")

    with pytest.raises(ValueError, match="rotation='sideways' is not a way to build episodes"):
        evaluate(Never(), glyphs[2], 3, 1, 1, 2, rotation="sideways")
    with pytest.raises(ValueError, match=r"are not the four turns of each character \(rotations=\(0,\)\)"):
        evaluate(Never(), glyphs[2], 3, 1, 1, 2, rotation="per-class")
