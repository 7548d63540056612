"""The augmentation protocol: paired CI, query isolation, feature space, no meta-test leakage, registry, CLI."""
import argparse
import json
import re
from types import SimpleNamespace

import pytest
import scipy.stats
import torch

from fslcourse.data import EpisodeSampler
from fslcourse.evaluate import evaluate
from fslcourse.generative.augment import AugmentedClassifier, evaluate_paired, paired_difference
from fslcourse.methods import ProtoNet
from fslcourse.methods.base import FewShotClassifier, prototypes
from fslcourse.methods.protonet import protonet_logits
from fslcourse.training.generators import add_augment_arguments, get_generator


def test_paired_ci_hand_computed_and_against_scipy():
    mean, ci = paired_difference([50.0, 60.0, 70.0], [60.0, 60.0, 80.0])  # d = 10, 0, 10
    assert mean == pytest.approx(20 / 3) and ci == pytest.approx(1.959964 * (100 / 3) ** 0.5 / 3 ** 0.5, rel=1e-6)
    g = torch.Generator().manual_seed(0)
    base = 100 * torch.rand(600, generator=g)
    aug = base + 3 + 5 * torch.randn(600, generator=g)
    mean, ci = paired_difference(base, aug)
    d = (aug - base).double().numpy()
    lo, hi = scipy.stats.norm.interval(0.95, loc=d.mean(), scale=scipy.stats.sem(d))
    assert mean == pytest.approx(d.mean()) and ci == pytest.approx((hi - lo) / 2, rel=1e-6)
    # pairing removes the between-episode variance: far narrower than the CI of either accuracy
    assert ci < 0.3 * 1.96 * base.double().std().item() / 600 ** 0.5
    with pytest.raises(ValueError, match="same episodes"):
        paired_difference(base, aug[:10])


class SpyMethod(FewShotClassifier):
    """Nearest class mean in pixels that records what it was given."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def predict(self, support_x, support_y, query_x):
        self.calls.append((support_x.clone(), support_y.clone(), query_x.clone()))
        protos = prototypes(support_x.flatten(1), support_y, int(support_y.max()) + 1)
        return -torch.cdist(query_x.flatten(1), protos)


class SpyGenerator:
    space = "pixel"

    def __init__(self):
        self.inputs = []

    def generate(self, support, support_y, n_per_class, seed):
        self.inputs.append(support.clone())
        n_way = int(support_y.max()) + 1
        y = torch.arange(n_way).repeat_interleave(n_per_class)
        noise = torch.rand(len(y), 1, 1, 1, generator=torch.Generator().manual_seed(seed))
        return torch.full((len(y), 1, 28, 28), 0.123) + 0.01 * noise, y


def test_generated_examples_never_enter_the_query_set(glyphs):
    test = glyphs[2]
    method, gen = SpyMethod(), SpyGenerator()
    results = evaluate_paired(method, gen, test, n_way=4, n_shot=2, n_generated=(3,), n_query=5, n_episodes=6,
                              seed=7)
    assert len(method.calls) == 12 and len(gen.inputs) == 6  # 6 baseline + 6 augmented predictions
    sampler = EpisodeSampler(test, 4, 2, 5, seed=7)
    for i in range(6):
        ep = sampler.sample()
        base_call, aug_call = method.calls[i], method.calls[6 + i]
        # identical episodes for both arms; the query set is passed untouched
        assert torch.equal(base_call[2], ep.query_x) and torch.equal(aug_call[2], ep.query_x)
        # the generator saw the support set only
        assert torch.equal(gen.inputs[i], ep.support_x)
        # augmented support = real support + 3 generated per class, labelled per class
        assert torch.equal(aug_call[0][:8], ep.support_x) and len(aug_call[0]) == 8 + 12
        assert aug_call[1][8:].tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
        assert not ((aug_call[2] - 0.123).abs() < 0.02).flatten(1).all(1).any()  # no generated image in the query
    r = results[0]
    assert r.baseline.episode_accuracies != r.augmented.episode_accuracies or r.paired_difference == 0
    assert r.paired_difference == pytest.approx(r.augmented.accuracy - r.baseline.accuracy)


class CopyPrototype:
    """Feature generator whose samples are the class mean of the support features (+ an offset)."""

    space = "feature"

    def __init__(self, offset=0.0):
        self.offset = offset

    def generate(self, support, support_y, n_per_class, seed):
        n_way = int(support_y.max()) + 1
        y = torch.arange(n_way).repeat_interleave(n_per_class)
        return prototypes(support, support_y, n_way)[y] + self.offset, y


def test_feature_space_augmentation_goes_through_the_method(glyphs):
    torch.manual_seed(0)
    net = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    ep = EpisodeSampler(glyphs[2], 5, 2, 3, seed=0).sample()
    with torch.no_grad():
        same = AugmentedClassifier(net, CopyPrototype(), 4).predict(ep.support_x, ep.support_y, ep.query_x)
        base = net.predict(ep.support_x, ep.support_y, ep.query_x)
        assert torch.allclose(same, base, atol=1e-4)  # adding copies of the prototype changes nothing
        shifted = AugmentedClassifier(net, CopyPrototype(offset=1.0), 2).predict(ep.support_x, ep.support_y,
                                                                                  ep.query_x)
        z_s, z_q = net.backbone(ep.support_x), net.backbone(ep.query_x)
        protos = prototypes(z_s, ep.support_y, 5)
        manual = protonet_logits(z_q, (2 * protos + 2 * (protos + 1.0)) / 4)  # K=2 real + m=2 generated
        assert torch.allclose(shifted, manual, atol=1e-3)
    assert isinstance(net.backbone, torch.nn.Module) and not isinstance(net.backbone, torch.nn.Flatten)  # untouched


def test_feature_space_augmentation_uses_the_embedding_seam_and_refuses_methods_without_one(glyphs):
    """embed, then classify_embeddings: predict equals the seam, and the fine-tuning baseline's new head
    sees the generated embeddings; a method without the seam gets one clear error."""
    from fslcourse.generative.augment import SupportGenerator
    from fslcourse.methods import FineTune, PixelPrototype

    torch.manual_seed(0)
    ep = EpisodeSampler(glyphs[2], 5, 2, 3, seed=0).sample()
    for net in (ProtoNet(backbone_kwargs={"hidden": 8}).eval(), FineTune(backbone_kwargs={"hidden": 8}, steps=3).eval()):
        assert net.has_embedding_seam and isinstance(CopyPrototype(), SupportGenerator)
        z_s, z_q = net.embed(ep.support_x), net.embed(ep.query_x)
        via_seam = net.classify_embeddings(torch.cat([z_s, z_s[:5] + 1.0]), torch.cat([ep.support_y, ep.support_y[:5]]), z_q)
        aug = AugmentedClassifier(net, CopyPrototype(), 1)

        class FirstShotPlusOne(CopyPrototype):  # generates the first support embedding of each class, + 1
            def generate(self, support, support_y, n_per_class, seed):
                return support[:5] + 1.0, support_y[:5]
        aug.generator = FirstShotPlusOne()
        with torch.no_grad():
            z = net.embed(torch.cat([ep.support_x, ep.query_x]))  # the augmented path embeds both at once
        want = net.classify_embeddings(torch.cat([z[:10], z[:5] + 1.0]), torch.cat([ep.support_y, ep.support_y[:5]]), z[10:])
        assert torch.allclose(aug.predict(ep.support_x, ep.support_y, ep.query_x), want, atol=1e-5)
        assert via_seam.shape == (len(ep.query_y), 5)
    with pytest.raises(ValueError, match="PixelPrototype has no embedding seam .* use a pixel-space generator"):
        AugmentedClassifier(PixelPrototype(), CopyPrototype(), 2)


def test_support_generators_take_an_integer_seed():
    from fslcourse.generative.augment import ModelGenerator, seeded

    class Noise(torch.nn.Module):
        def generate(self, support, support_y, m, generator):
            return torch.rand(len(support) * m, 3, generator=generator), support_y.repeat_interleave(m)

    gen, x, y = ModelGenerator(Noise(), space="feature"), torch.zeros(4, 3), torch.arange(4)
    assert torch.equal(gen.generate(x, y, 2, 5)[0], gen.generate(x, y, 2, 5)[0])
    assert not torch.equal(gen.generate(x, y, 2, 5)[0], gen.generate(x, y, 2, 6)[0])
    with pytest.raises(TypeError, match="takes an integer seed, not a Generator"):
        seeded(torch.Generator())


@pytest.mark.parametrize("space", ["pixel", "feature"])
def test_a_bad_request_is_one_clear_error_before_the_model_runs(space):
    from fslcourse.generative.augment import ModelGenerator

    class Untouchable(torch.nn.Module):
        def generate(self, *args, **kwargs):
            raise AssertionError("the model ran on a bad request")

    gen = ModelGenerator(Untouchable(), space=space)
    x = torch.rand(6, 1, 28, 28) if space == "pixel" else torch.rand(6, 8)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    for bad in (0, -2, 2.5, True, "3"):
        with pytest.raises(ValueError, match=f"n_per_class={bad!r}: ask for at least one generated example per class"):
            gen.generate(x, y, bad, 0)
    with pytest.raises(ValueError, match="support_y has shape .6,. and dtype torch.float32; pass one integer label"):
        gen.generate(x, y.float(), 1, 0)
    with pytest.raises(ValueError, match=r"support_y holds the labels \[0, 2\]; use 0 .. n_way-1 with every class"):
        gen.generate(x[:4], torch.tensor([0, 0, 2, 2]), 1, 0)
    with pytest.raises(ValueError, match=r"support_y holds the labels \[-1, 0\]; use 0 .. n_way-1 with every class"):
        gen.generate(x[:4], torch.tensor([-1, -1, 0, 0]), 1, 0)  # not torch's "bincount only supports ..."
    wrong = x.flatten(1) if space == "pixel" else x[:, :, None]
    with pytest.raises(ValueError, match=re.escape(f"support has shape {tuple(wrong.shape)} for 6 labels; a {space} gen")):
        gen.generate(wrong, y, 1, 0)
    with pytest.raises(ValueError, match="support has shape .5, .* for 6 labels"):
        gen.generate(x[:5], y, 1, 0)


def test_augmented_evaluation_is_reproducible_and_m0_is_the_baseline(glyphs):
    torch.manual_seed(0)
    net = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    base = evaluate(net, glyphs[2], 5, 1, 3, 5, seed=3)
    res0 = evaluate(AugmentedClassifier(net, SpyGenerator(), 0), glyphs[2], 5, 1, 3, 5, seed=3)
    assert res0.episode_accuracies == base.episode_accuracies
    a = evaluate_paired(net, SpyGenerator(), glyphs[2], 5, 1, (2,), 3, 5, seed=3, generation_seed=1)[0]
    b = evaluate_paired(net, SpyGenerator(), glyphs[2], 5, 1, (1, 2), 3, 5, seed=3, generation_seed=1)[1]
    assert a.augmented.episode_accuracies == b.augmented.episode_accuracies  # m=2 does not depend on other m


class SeedSpy(SpyGenerator):
    def __init__(self):
        super().__init__()
        self.seeds = []

    def generate(self, support, support_y, n_per_class, seed):
        self.seeds.append(seed)
        return super().generate(support, support_y, n_per_class, seed)


def test_episode_i_is_generated_with_seed_generation_seed_times_1000003_plus_i(glyphs):
    """The documented seeds: ``generation_seed`` (not the episodes' ``seed``) times 1_000_003, plus the episode's
    number, so that every episode draws its own samples and another generation_seed other ones."""
    torch.manual_seed(0)
    net = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    spy = SeedSpy()
    evaluate_paired(net, spy, glyphs[2], 5, 1, (2, 3), 3, 4, seed=3, generation_seed=2)
    assert spy.seeds == [2 * 1_000_003 + i for i in range(4)] * 2  # m=2, then m=3 on the same episodes
    spy = SeedSpy()
    evaluate(AugmentedClassifier(net, spy, 2, seed=7), glyphs[2], 5, 1, 3, 3, seed=0)
    assert spy.seeds == [7 * 1_000_003 + i for i in range(3)]


def test_a_baseline_of_another_protocol_is_refused_even_without_an_episode_digest(glyphs):
    """A result from before episode digests (``episodes_sha256=None``) pairs with anything by digest, so the protocol
    check alone stands between it and a paired difference over other episodes (another seed or n_query)."""
    torch.manual_seed(0)
    net = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    base = evaluate(net, glyphs[2], 5, 1, 3, 5, seed=3)
    base.episodes_sha256 = None
    for n_query, seed, protocol in ((3, 4, r"\(5, 1, 3, 5, 4\)"), (4, 3, r"\(5, 1, 4, 5, 3\)")):
        with pytest.raises(ValueError, match=r"^baseline has \(n_way, n_shot, n_query, n_episodes, seed\) = "
                                             rf"\(5, 1, 3, 5, 3\) but this protocol is {protocol}; pass baseline=None"):
            evaluate_paired(net, SpyGenerator(), glyphs[2], 5, 1, (2,), n_query, 5, seed=seed, baseline=base)


@pytest.mark.parametrize("chunk", [2048, 45, 1])  # all at once, chunks that split the classes unevenly, one at a time
def test_embed_split_embeds_every_image_of_the_classes_asked_for_in_eval_mode(glyphs, chunk):
    from fslcourse.generative.augment import embed_split

    split = glyphs[2]
    torch.manual_seed(0)
    backbone = ProtoNet(backbone_kwargs={"hidden": 8}).backbone
    with torch.no_grad():  # running statistics away from their start, so that eval and train modes differ
        backbone.train()(torch.rand(16, 1, 28, 28))
    state = {k: v.clone() for k, v in backbone.state_dict().items()}
    every = embed_split(backbone.train(), split, chunk=chunk)
    some = embed_split(backbone, split, torch.tensor([7, 0, 3]), chunk=chunk)
    assert all(torch.equal(v, backbone.state_dict()[k]) for k, v in state.items())  # eval mode: statistics unchanged
    examples = torch.arange(split.n_examples)[None]
    with torch.no_grad():
        want = torch.stack([backbone.eval()(split.get(torch.tensor([c]), examples)[0]) for c in range(split.n_classes)])
    assert every.shape == (split.n_classes, split.n_examples, want.shape[-1])
    torch.testing.assert_close(every, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(some, want[[7, 0, 3]], atol=1e-5, rtol=1e-5)


def test_unknown_generator_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"generator 'nope' is not registered; known generators: .*vae"):
        get_generator("nope")


class Tripwire:
    """A split that fails the test on any use."""

    name = "test"

    def __getattr__(self, attr):
        raise AssertionError(f"the generator's training touched the meta-test split (.{attr})")


def test_the_generators_never_see_a_meta_test_class(glyphs, tmp_path):
    from fslcourse.io import file_source
    from fslcourse.training import load_or_train

    train, val, _ = glyphs
    data = SimpleNamespace(train=train, val=val, test=Tripwire())
    torch.manual_seed(0)
    backbone = ProtoNet(backbone_kwargs={"hidden": 8}).backbone
    tiny = {"steps": 3, "n_way": 4, "val_every": 2, "val_n_way": 4}
    out = load_or_train("vae", data=data, backbone=backbone, path=tmp_path / "vae.pt", progress=False,
                        changes={"pixel": {**tiny, "model": {"hidden": 4}}, "feature": tiny})
    assert sorted(out["trained"]) == ["feature", "pixel"]
    for entry in (out["checkpoint"]["pixel"], out["checkpoint"]["feature"][out["fingerprint"]]):
        hist = entry["history"]
        assert hist["split"] == "train"
        assert hist["seen_classes"] and max(hist["seen_classes"]) < train.n_classes
    again = load_or_train("vae", data=data, backbone=backbone, path=tmp_path / "vae.pt", progress=False)
    assert again["trained"] == []  # loaded, not retrained
    assert again["source"] == out["source"] == file_source(tmp_path / "vae.pt")  # records name the file's hash


def test_committed_vae_checkpoint_was_trained_on_meta_train_only():
    from fslcourse.io import load_checkpoint
    from fslcourse.training.generators import checkpoint_file

    path = checkpoint_file("vae", "quick")
    ckpt = load_checkpoint(path)
    entries = [ckpt["pixel"], *ckpt.get("feature", {}).values()]
    for entry in entries:
        hist = entry["history"]
        assert hist["split"] == "train" and max(hist["seen_classes"]) < 3384  # Omniglot meta-train classes
        assert entry["train_seconds"] > 0 and "config" in entry and entry["seed"] == 0
    # class ids are indices within a split, so only a count can tell the splits apart: the pixel VAE saw more
    # classes than meta-test (659 characters × 4 rotations = 2636) or meta-validation (472) hold
    assert len(ckpt["pixel"]["history"]["seen_classes"]) > 2636


def test_cli_reports_paired_fields(omniglot, tmp_path):
    from fslcourse.pretrained import checkpoint_path
    from fslcourse.training.generators import evaluate_augmented

    if not checkpoint_path("protonet").exists():
        pytest.fail(f"{checkpoint_path('protonet')} is missing; create it with `python -m fslcourse train protonet --recipe quick`")
    parser = argparse.ArgumentParser()
    add_augment_arguments(parser)
    args = parser.parse_args(["--augment", "vae", "--n-generated", "2", "5"])
    args.__dict__.update(name="protonet", n_way=5, n_shot=1, n_query=5, episodes=20, seed=0, profile="quick",
                         split="test", device="cpu", json=tmp_path / "r.json")
    record = evaluate_augmented(args)
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["paired_difference"] == pytest.approx(record["paired_difference"])
    assert {"baseline_accuracy", "augmented_accuracy", "paired_ci95"} <= set(saved)
    assert [r["n_generated"] for r in saved["by_n_generated"]] == [2, 5]
    assert saved["paired_difference"] == pytest.approx(saved["augmented_accuracy"] - saved["baseline_accuracy"])


def test_a_feature_generator_refuses_another_backbone(glyphs):
    from fslcourse.generative.augment import backbone_fingerprint

    torch.manual_seed(0)
    a, b = ProtoNet(backbone_kwargs={"hidden": 8}), ProtoNet(backbone_kwargs={"hidden": 8})
    gen = CopyPrototype()
    gen.backbone_fingerprint = backbone_fingerprint(a.backbone)
    from fslcourse.generative.weighted_prototypes import WeightedAugmentation

    for wrapper in (AugmentedClassifier, WeightedAugmentation):  # the weighted one accepted it, and space="features"
        wrapper(a, gen, 2)  # its own backbone: fine
        with pytest.raises(ValueError, match="trained on backbone .* build the generator with backbone=method.backbone"):
            wrapper(b, gen, 2)
        gen.space = "features"
        with pytest.raises(ValueError, match=r"generator.space='features'; use one of "):
            wrapper(a, gen, 2)
        gen.space = "feature"


def test_every_registered_generator_names_its_checkpoint_family():
    from fslcourse.training.generators import CHECKPOINT_FAMILY, FAMILIES, GENERATORS

    assert set(CHECKPOINT_FAMILY) == set(GENERATORS) and set(CHECKPOINT_FAMILY.values()) == set(FAMILIES)


def test_a_reused_augmenting_wrapper_draws_the_same_samples_on_the_same_episodes(glyphs):
    """Its episode counter was never reset, so a second evaluate of the same wrapper drew other samples."""
    from fslcourse.generative.classical import Deformation
    from fslcourse.generative.weighted_prototypes import WeightedAugmentation

    torch.manual_seed(0)
    net = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    for wrapper in (AugmentedClassifier(net, Deformation(alpha=6.0, rotation=40), 3, seed=0),
                    WeightedAugmentation(net, Deformation(alpha=6.0, rotation=40), 3, weight=0.5, seed=0)):
        first = evaluate(wrapper, glyphs[2], 5, 1, 3, 6, seed=0).episode_accuracies
        assert evaluate(wrapper, glyphs[2], 5, 1, 3, 6, seed=0).episode_accuracies == first


def test_a_baseline_measured_on_other_episodes_of_the_same_protocol_is_refused(glyphs):
    from fslcourse.data.splits import ImageSplit

    torch.manual_seed(0)
    net = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    test = glyphs[2]
    rotated = ImageSplit(test.name, test.images, test.base_names, test.alphabets, (0, 1, 2, 3), test.protocol)
    base = evaluate(net, rotated, 5, 1, 3, 5, seed=3)  # same split name, protocol and seed: other episodes
    with pytest.raises(ValueError, match=r"^baseline was measured on other episodes than these"):
        evaluate_paired(net, SpyGenerator(), test, 5, 1, (2,), 3, 5, seed=3, baseline=base)
    same = evaluate(net, test, 5, 1, 3, 5, seed=3)
    assert evaluate_paired(net, SpyGenerator(), test, 5, 1, (2,), 3, 5, seed=3, baseline=same)[0].baseline is same


@pytest.mark.parametrize("support, support_y, seed, message", [
    ([[0.0]], torch.tensor([0]), 0, r"^support is a list, not a torch tensor"),
    (torch.zeros(2, 1, 28, 28), [0, 1], 0, r"^support_y is a list, not a torch tensor"),
    (torch.zeros(2, 1, 28, 28), torch.tensor([False, True]), 0, r"^support_y has shape \(2,\) and dtype torch.bool"),
    (torch.full((2, 1, 28, 28), 255.0), torch.arange(2), 0, r"^support's pixels lie in \[255, 255\], not \[0, 1\]"),
    (torch.full((2, 1, 28, 28), float("nan")), torch.arange(2), 0, r"^support holds NaN pixels"),
    (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), torch.arange(2), 0, r"^support is torch.uint8, not float drawings"),
    (torch.zeros(2, 1, 28, 28), torch.arange(2), 2**70, r"^seed=1180591620717411303424 is outside torch's seed range"),
])
def test_a_generation_request_a_student_could_make_is_refused_in_one_line(support, support_y, seed, message):
    """0-255 or NaN drawings were generated from (clamped to garbage, or NaN) without a word; lists, bool labels and
    a huge seed reached torch (AttributeError, bincount on Bool, 'Overflow when unpacking long long')."""
    from fslcourse.generative.classical import CopyNoise, Deformation

    for generator in (Deformation(), CopyNoise()):
        with pytest.raises(ValueError, match=message):
            generator.generate(support, support_y, 2, seed)


class _NoEpisodes(ProtoNet):
    def predict(self, support_x, support_y, query_x):
        raise AssertionError("an episode ran before the arguments were checked")


@pytest.mark.parametrize("change, message", [
    ({"n_generated": 5}, r"^n_generated=5 must be a list of the values of m to try, e.g. \(1, 5, 10\) or \[5\]$"),
    ({"n_generated": (2.5,)}, r"^n_generated=\[2.5\]: give at least one m, each a whole number >= 0"),
    ({"n_generated": (-1,)}, r"^n_generated=\[-1\]: give at least one m"),
    ({"n_generated": ()}, r"^n_generated=\[\]: give at least one m"),
    ({"generator": "vae"}, r"^generator='vae' is a name, not a generator; build it with get_generator\('vae'\)"),
    ({"generation_seed": None}, r"^generation_seed=None must be a whole number"),
    ({"baseline": "x"}, r"^baseline is a str; pass the EvalResult of evaluate"),
])
def test_evaluate_paired_checks_its_arguments_before_the_baseline_runs(glyphs, change, message):
    """m=5 (not (5,)) or a generator's name failed only after the baseline's episodes (a TypeError, or
    'generator.space=None'); m=2.5 ran as m=2 and m=() returned [] without a word."""
    args = {"generator": SpyGenerator(), "n_generated": (1,), "generation_seed": 0, "baseline": None, **change}
    with pytest.raises(ValueError, match=message):
        evaluate_paired(_NoEpisodes(backbone_kwargs={"hidden": 4}), args["generator"], glyphs[2], 5, 1,
                        args["n_generated"], 2, 3, generation_seed=args["generation_seed"], baseline=args["baseline"])
