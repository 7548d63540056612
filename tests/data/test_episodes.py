"""EpisodeSampler: properties (hypothesis), errors that name the numbers, reproducibility."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fslcourse.data import EpisodeSampler, make_glyph_split

SPLIT = make_glyph_split(n_classes=12, n_examples=8, seed=3, n_alphabets=3)


@settings(max_examples=40, deadline=None)
@given(n_way=st.integers(1, 12), n_shot=st.integers(1, 4), n_query=st.integers(1, 4), seed=st.integers(0, 10**6))
def test_episode_properties(n_way, n_shot, n_query, seed):
    ep = EpisodeSampler(SPLIT, n_way, n_shot, n_query, seed=seed).sample()
    assert ep.support_x.shape == (n_way * n_shot, 1, 28, 28)
    assert ep.query_x.shape == (n_way * n_query, 1, 28, 28)
    # exact class counts, labels 0..N-1
    assert torch.equal(torch.bincount(ep.support_y, minlength=n_way), torch.full((n_way,), n_shot))
    assert torch.equal(torch.bincount(ep.query_y, minlength=n_way), torch.full((n_way,), n_query))
    assert set(ep.support_y.tolist()) == set(range(n_way))
    # distinct classes, all from the split
    assert len(set(ep.classes.tolist())) == n_way
    assert all(0 <= c < SPLIT.n_classes for c in ep.classes.tolist())
    # each support/query image is the image of its class, and no image is in both sets
    for k, c in enumerate(ep.classes.tolist()):
        pool = SPLIT.get(torch.tensor([c]), torch.arange(SPLIT.n_examples)[None])[0]  # (n_examples, 1, 28, 28)
        s = ep.support_x[ep.support_y == k]
        q = ep.query_x[ep.query_y == k]
        s_idx = [int(torch.nonzero((pool == x).flatten(1).all(1))[0]) for x in s]
        q_idx = [int(torch.nonzero((pool == x).flatten(1).all(1))[0]) for x in q]
        assert not set(s_idx) & set(q_idx), "support and query share an example"
        assert len(set(s_idx + q_idx)) == n_shot + n_query


@settings(max_examples=20, deadline=None)
@given(n_way=st.integers(1, 4), seed=st.integers(0, 10**6))
def test_within_alphabet_draws_one_alphabet(n_way, seed):
    ep = EpisodeSampler(SPLIT, n_way, 1, 1, seed=seed, within_alphabet=True).sample()
    assert len(set(SPLIT.class_alphabet[ep.classes].tolist())) == 1


def test_same_seed_same_episodes_and_batches():
    a = EpisodeSampler(SPLIT, 5, 2, 3, seed=7).sample_batch(4)
    b = EpisodeSampler(SPLIT, 5, 2, 3, seed=7).sample_batch(4)
    c = EpisodeSampler(SPLIT, 5, 2, 3, seed=8).sample_batch(4)
    assert a.support_x.shape == (4, 10, 1, 28, 28) and len(a) == 4
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.classes, b.classes)
    assert not torch.equal(a.classes, c.classes)
    assert torch.equal(a[2].query_x, a.query_x[2])
    assert [e.n_way for e in a] == [5] * 4


def test_generator_is_used():
    """A passed generator replaces the default seed 0: its own seed decides the episodes, and it advances."""
    def classes(seed, n=4):
        g = torch.Generator().manual_seed(seed)
        sampler = EpisodeSampler(SPLIT, 3, 1, 1, generator=g)
        before = g.get_state().clone()
        drawn = [sampler.sample().classes for _ in range(n)]
        assert not torch.equal(g.get_state(), before)  # the sampler draws from the generator it was given
        return torch.stack(drawn)  # (n, n_way)

    by_seed = EpisodeSampler(SPLIT, 3, 1, 1, seed=1)
    assert torch.equal(classes(1), torch.stack([by_seed.sample().classes for _ in range(4)]))
    assert not torch.equal(classes(1), classes(2))  # an ignored generator would leave both at the default seed


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_way=30, n_shot=1, n_query=1), "n_way=30 but the 'glyphs' split has 12 classes"),
    (dict(n_way=5, n_shot=5, n_query=4), "n_shot + n_query = 5 + 4 = 9 but each class"),
    (dict(n_way=0, n_shot=1, n_query=1), "n_way=0 must be a positive integer"),
    (dict(n_way=5, n_shot=-1, n_query=1), "n_shot=-1 must be a positive integer"),
    (dict(n_way=5, n_shot=1, n_query=1.5), "n_query=1.5 must be a positive integer"),
    (dict(n_way=5, n_shot=1, n_query=1, within_alphabet=True), "n_way=5 but no alphabet"),
])
def test_impossible_requests_name_the_numbers(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        EpisodeSampler(SPLIT, **kwargs)


def test_rotations_are_classes_and_rotate_images():
    split = make_glyph_split(n_classes=3, n_examples=4, seed=1)
    from fslcourse.data import ImageSplit
    rot = ImageSplit("r", split.images, split.base_names, split.alphabets, rotations=(0, 1, 2, 3))
    assert rot.n_classes == 12
    x = rot.get(torch.tensor([4, 5, 6, 7]), torch.zeros(4, 1, dtype=torch.long))[:, 0, 0]  # base 1, 4 turns
    for k in range(4):
        assert torch.equal(x[k], torch.rot90(x[0], k, dims=(0, 1)))
    assert rot.class_name(5).endswith("(rot 90°)")


def test_episode_to_device_keeps_values():
    ep = EpisodeSampler(SPLIT, 3, 1, 2, seed=0).sample()
    moved = ep.to("cpu")
    assert torch.equal(moved.query_x, ep.query_x) and moved.n_query == 2


def test_within_alphabet_names_the_alphabets_it_uses_and_leaves_out():
    # 10 classes dealt round-robin into 4 styles: style0 and style1 have 3 classes, style2 and style3 have 2
    split = make_glyph_split(n_classes=10, n_examples=4, seed=2, n_alphabets=4)
    sampler = EpisodeSampler(split, 3, 1, 1, seed=0, within_alphabet=True)
    assert sampler.alphabets_used == ["style0", "style1"]
    assert sampler.alphabets_left_out == ["style2", "style3"]
    used = {split.alphabets[int(c)] for _ in range(20) for c in sampler.sample().classes}
    assert used <= {"style0", "style1"}
    plain = EpisodeSampler(split, 3, 1, 1, seed=0)
    assert plain.alphabets_left_out == [] and plain.alphabets_used == ["style0", "style1", "style2", "style3"]


def test_numpy_integers_are_positive_integers():
    np = pytest.importorskip("numpy")
    sampler = EpisodeSampler(SPLIT, np.int64(3), np.int32(2), np.int64(1), seed=0)
    assert (sampler.n_way, sampler.n_shot) == (3, 2) and type(sampler.n_way) is int
    assert len(sampler.sample_batch(np.int64(2))) == 2
    for bad in (np.float64(3.0), True, np.int64(0), "3"):
        with pytest.raises(ValueError, match="n_way=.* must be a positive integer"):
            EpisodeSampler(SPLIT, bad, 1, 1)


def _drawers(ep, images):
    """The drawer index (position in its class) of each support and query image of ``ep``."""
    def which(x, y):
        return [i for i in range(images.shape[1]) if torch.equal(images[int(ep.classes[y]), i], x)]
    return ([which(x, y) for x, y in zip(ep.support_x, ep.support_y)],
            [which(x, y) for x, y in zip(ep.query_x, ep.query_y)])


def test_classes_and_drawers_are_drawn_at_random():
    """Sorted classes (label i always the i-th smallest id) or a support always from drawer 0 passed every test."""
    images = SPLIT.get(torch.arange(12), torch.arange(8)[None].expand(12, -1))  # (12, 8, 1, 28, 28)
    sampler = EpisodeSampler(SPLIT, 5, 1, 2, seed=1)
    support, unsorted = set(), 0
    for _ in range(50):
        ep = sampler.sample()
        unsorted += ep.classes.tolist() != sorted(ep.classes.tolist())
        support.update(d for (d,) in _drawers(ep, images)[0])
    assert support == set(range(8)) and unsorted > 40  # a sorted 5-way draw: 1 in 120


def test_a_seed_gives_these_episodes_on_every_machine():
    """Known values: a change in the sampler, or in torch's generator, would make new records unpairable with the
    committed ones (same seed, other episodes) without a word."""
    images = SPLIT.get(torch.arange(12), torch.arange(8)[None].expand(12, -1))
    ep = EpisodeSampler(SPLIT, 5, 1, 2, seed=0).sample()
    assert ep.classes.tolist() == [8, 0, 5, 9, 7]
    support, query = _drawers(ep, images)
    assert support == [[1], [0], [0], [0], [0]]
    assert query == [[7], [2], [3], [5], [7], [5], [1], [6], [1], [2]]


@pytest.mark.parametrize("seed", [-3, 2**70, 1.5, True])
def test_seeds_outside_torchs_range_are_refused_as_setup_refuses_them(glyphs, seed):
    # -3 was wrapped to 2**64 - 3 and recorded as -3; 2**70 overflowed in torch's words
    with pytest.raises(ValueError, match=r"seed=.* must be a whole number from 0 to 2\*\*64 - 1"):
        EpisodeSampler(glyphs[2], 3, 1, 1, seed=seed)


def test_a_split_prints_as_a_summary_not_its_pixels(glyphs):
    text = repr(glyphs[2])
    assert text == ("ImageSplit(name='test', 30 classes x 20 drawings of 28x28, 4 alphabets, rotations=(0,), "
                    "protocol='custom')") and len(text) < 200


def test_within_alphabet_draws_every_kept_alphabet_and_every_class_of_it():
    """Always the first kept alphabet, or always its first n_way classes, passed the one-alphabet test: 60 draws of
    2 of the 4 classes of each of 3 alphabets reach every alphabet and every class (a class is missed by a right
    sampler with p = (5/6)**60 < 2e-5; the seed is fixed)."""
    sampler = EpisodeSampler(SPLIT, 2, 1, 1, seed=0, within_alphabet=True)
    drawn = [sampler.sample().classes.tolist() for _ in range(60)]
    assert {int(SPLIT.class_alphabet[c[0]]) for c in drawn} == {0, 1, 2}
    assert {c for classes in drawn for c in classes} == set(range(SPLIT.n_classes))


def test_a_batch_is_the_next_episodes_of_the_stream_and_indexes_as_one():
    """A batch repeating its first episode, or a batch's episode i taking another episode's classes, passed; a
    single episode must not pose as a batch of n_way episodes."""
    batch = EpisodeSampler(SPLIT, 3, 2, 1, seed=5).sample_batch(4)
    one_by_one = EpisodeSampler(SPLIT, 3, 2, 1, seed=5)
    for i, ep in enumerate(batch):
        single = one_by_one.sample()
        for field in ("support_x", "support_y", "query_x", "query_y", "classes"):
            assert torch.equal(getattr(ep, field), getattr(single, field)), (i, field)
            assert torch.equal(getattr(ep, field), getattr(batch, field)[i]), (i, field)
    assert len({tuple(e.classes.tolist()) for e in batch}) > 1
    assert not single.is_batch and len(single) == 1
    with pytest.raises(TypeError, match="indexing needs a batch"):
        single[0]


def test_within_alphabet_and_generator_of_the_wrong_type_are_refused(glyphs):
    """within_alphabet="False" is a true string: evaluate(..., within_alphabet="no") measured within-alphabet
    episodes and recorded within_alphabet=True without a word; a generator given as text raised an AttributeError."""
    for value in ("False", "no", 1, None):
        with pytest.raises(ValueError, match=rf"^within_alphabet={value!r} must be True or False$"):
            EpisodeSampler(glyphs[2], 5, 1, 1, within_alphabet=value)
    assert EpisodeSampler(glyphs[2], 5, 1, 1, within_alphabet=np.bool_(False)).within_alphabet is False
    with pytest.raises(ValueError, match=r"^generator='cpu' is not a torch.Generator; pass a CPU torch.Generator"):
        EpisodeSampler(glyphs[2], 5, 1, 1, generator="cpu")


# ---- rotation: how an episode's classes are built from characters and quarter turns (EpisodeSampler(rotation=...))

def _turned(split):
    """``split``'s characters with their four quarter turns as classes (class ``4 * character + turn``)."""
    from fslcourse.data import ImageSplit
    return ImageSplit(split.name, split.images, split.base_names, split.alphabets, rotations=(0, 1, 2, 3))


TURNED = _turned(SPLIT)  # 12 characters, 48 classes, 8 drawings each, 3 alphabets
DRAWS = ("per-class", "per-episode", "upright")  # the values that draw characters and turn them


def test_the_default_draws_the_episodes_it_drew_before_rotation_existed():
    """Class ids computed with the sampler as it was before ``rotation``: an added draw in the default's stream
    would make every committed record unpairable with a new one (same seed, other episodes)."""
    plain = EpisodeSampler(TURNED, 5, 1, 2, seed=0)
    assert [plain.sample().classes.tolist() for _ in range(3)] == [
        [44, 22, 29, 18, 23], [25, 12, 24, 43, 11], [9, 24, 19, 35, 22]]
    alphabet = EpisodeSampler(TURNED, 5, 1, 2, seed=0, within_alphabet=True)
    assert [alphabet.sample().classes.tolist() for _ in range(3)] == [
        [47, 33, 20, 8, 23], [34, 44, 35, 32, 46], [20, 21, 22, 10, 8]]


@settings(max_examples=25, deadline=None)
@given(n_way=st.integers(1, 48), n_shot=st.integers(1, 3), n_query=st.integers(1, 3), seed=st.integers(0, 10**6))
def test_the_default_is_the_old_randperm_formula(n_way, n_shot, n_query, seed):
    """``rotation="classes"`` (given or not) draws, episode after episode, what the old code drew: a random
    permutation of the split's classes, then a random order of each class's drawings, from one generator."""
    g = torch.Generator().manual_seed(seed)
    given_ = EpisodeSampler(TURNED, n_way, n_shot, n_query, seed=seed, rotation="classes")
    default = EpisodeSampler(TURNED, n_way, n_shot, n_query, seed=seed)
    for _ in range(2):
        classes = torch.randperm(TURNED.n_classes, generator=g)[:n_way]
        order = torch.rand(n_way, TURNED.n_examples, generator=g).argsort(dim=1)
        images = TURNED.get(classes, order[:, : n_shot + n_query])  # (n_way, n_shot+n_query, 1, 28, 28)
        for ep in (given_.sample(), default.sample()):
            assert torch.equal(ep.classes, classes)
            assert torch.equal(ep.support_x, images[:, :n_shot].flatten(0, 1))
            assert torch.equal(ep.query_x, images[:, n_shot:].flatten(0, 1))


@settings(max_examples=30, deadline=None)
@given(rotation=st.sampled_from(DRAWS), n_way=st.integers(1, 12), seed=st.integers(0, 10**6))
def test_each_construction_draws_distinct_characters_turned_its_way(rotation, n_way, seed):
    sampler = EpisodeSampler(TURNED, n_way, 1, 2, seed=seed, rotation=rotation)
    assert sampler.rotation == rotation
    for _ in range(3):
        ep = sampler.sample()
        characters, turns = (ep.classes // 4).tolist(), (ep.classes % 4).tolist()
        assert len(set(characters)) == n_way and all(0 <= c < 12 for c in characters)
        if rotation == "upright":
            assert set(turns) == {0}
        elif rotation == "per-episode":
            assert len(set(turns)) == 1
        # the images are the character's drawings, turned: each support image is a quarter turn of a drawing
        upright = TURNED.get(4 * (ep.classes // 4), torch.arange(8)[None].expand(n_way, -1))  # (n_way, 8, 1, 28, 28)
        for x, y in zip(ep.support_x, ep.support_y):
            turned = torch.rot90(upright[y], turns[y], dims=(-2, -1))  # (8, 1, 28, 28)
            assert any(torch.equal(x, t) for t in turned)


def test_turns_vary_per_class_or_per_episode_as_their_papers_code_did():
    """Over many episodes every turn occurs; per class they differ within an episode, per episode never."""
    def draws(rotation):
        sampler = EpisodeSampler(TURNED, 5, 1, 1, seed=0, rotation=rotation)
        return [(sampler.sample().classes % 4).tolist() for _ in range(60)]

    per_class, per_episode, upright = draws("per-class"), draws("per-episode"), draws("upright")
    assert {t for ep in per_class for t in ep} == {0, 1, 2, 3}
    assert sum(len(set(ep)) > 1 for ep in per_class) > 50  # 5 classes all turned alike: 1 in 256
    assert {ep[0] for ep in per_episode} == {0, 1, 2, 3} and all(len(set(ep)) == 1 for ep in per_episode)
    assert all(set(ep) == {0} for ep in upright)
    default = EpisodeSampler(TURNED, 5, 1, 1, seed=0)  # the default can hold two turns of one character
    assert any(len(set((default.sample().classes // 4).tolist())) < 5 for _ in range(60))


@pytest.mark.parametrize("rotation", DRAWS)
def test_a_seed_gives_the_same_constructed_episodes(rotation):
    def episodes(seed, n=4):
        batch = EpisodeSampler(TURNED, 6, 1, 2, seed=seed, rotation=rotation).sample_batch(n)
        return batch.classes, batch.support_x

    (a, ax), (b, bx), (c, _) = episodes(3), episodes(3), episodes(4)
    assert torch.equal(a, b) and torch.equal(ax, bx) and not torch.equal(a, c)
    g = torch.Generator().manual_seed(3)
    drawn = EpisodeSampler(TURNED, 6, 1, 2, generator=g, rotation=rotation).sample_batch(4).classes
    assert torch.equal(drawn, a)  # a generator passed in is the one drawn from


def test_a_construction_draws_other_episodes_than_the_default():
    """Not the default's classes under another name: the same seed gives other classes."""
    default = EpisodeSampler(TURNED, 5, 1, 1, seed=0).sample_batch(5).classes
    for rotation in DRAWS:
        assert not torch.equal(EpisodeSampler(TURNED, 5, 1, 1, seed=0, rotation=rotation).sample_batch(5).classes,
                               default)


class _Features:
    """A split of features (what generative.augment.FeatureSplit gives): classes without rotations."""
    name, n_classes, n_examples = "features", 48, 8

    def get(self, class_ids, example_ids):
        return torch.zeros(len(class_ids), example_ids.shape[1], 4)


@pytest.mark.parametrize("split, kwargs, message", [
    (TURNED, dict(rotation="sideways"), "rotation='sideways' is not a way to build episodes; use one of 'classes', "
                                        "'per-class', 'per-episode', 'upright'"),
    (TURNED, dict(rotation=None), "rotation=None is not a way to build episodes"),
    (TURNED, dict(rotation=90), "rotation=90 is not a way to build episodes"),
    (SPLIT, dict(rotation="per-class"), "rotation='per-class' turns characters itself, but the classes of the 'glyphs' "
                                        "split are not the four turns of each character (rotations=(0,)); load the "
                                        "images with rotations=True"),
    (_Features(), dict(rotation="upright"), "(no rotations: a feature split); load the images with rotations=True"),
    (TURNED, dict(rotation="per-episode", within_alphabet=True),
     "rotation='per-episode' with within_alphabet=True: no paper's code draws episodes that way"),
    (TURNED, dict(rotation="upright", n_way=13), "n_way=13 but the 'glyphs' split has 12 characters, and "
                                                 "rotation='upright' draws distinct characters; lower n_way"),
])
def test_a_bad_construction_is_refused_in_one_line_before_any_draw(split, kwargs, message):
    kwargs = {"n_way": 5, **kwargs}
    g = torch.Generator().manual_seed(0)
    before = g.get_state().clone()
    with pytest.raises(ValueError) as exc:
        EpisodeSampler(split, n_shot=1, n_query=1, generator=g, **kwargs)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert torch.equal(g.get_state(), before)
    if kwargs.get("rotation") in DRAWS and split is not TURNED:
        assert "rotation='classes'" in str(exc.value)  # the other way out


def test_a_split_with_some_turns_only_is_refused():
    from fslcourse.data import ImageSplit
    half = ImageSplit("half", SPLIT.images, SPLIT.base_names, SPLIT.alphabets, rotations=(0, 2))
    with pytest.raises(ValueError, match=r"not the four turns of each character \(rotations=\(0, 2\)\)"):
        EpisodeSampler(half, 5, 1, 1, rotation="per-class")


@pytest.fixture(scope="module")
def vinyals_test(omniglot):
    from fslcourse.data import load_omniglot
    return load_omniglot(progress=False, split="vinyals").test


def test_the_vinyals_test_classes_are_four_consecutive_turns_of_each_character(vinyals_test):
    """What the constructions rely on: class ``4 * character + turn`` of the Vinyals test split is the character's
    drawings turned by ``90° * turn``, for every one of its 1,692 classes."""
    test = vinyals_test
    assert test.rotations == (0, 1, 2, 3) and test.n_classes == 4 * len(test.base_names) == 1692
    ids = torch.arange(test.n_classes)
    every = test.get(ids, torch.arange(20)[None].expand(len(ids), -1))  # (1692, 20, 1, 28, 28)
    upright = every[0::4]  # (423, 20, 1, 28, 28)
    for turn in (1, 2, 3):
        assert torch.equal(every[turn::4], torch.rot90(upright, turn, dims=(-2, -1)))
    assert [test.class_name(c) for c in range(4)] == [test.base_names[0] + s for s in
                                                      ("", " (rot 90°)", " (rot 180°)", " (rot 270°)")]
    for rotation in DRAWS:
        ep = EpisodeSampler(test, 20, 1, 1, seed=0, rotation=rotation).sample()
        assert len(set((ep.classes // 4).tolist())) == 20
