"""The shared helpers of ``methods/base.py``: n_way_of, round_robin, prototypes, check_support, presets."""
import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fslcourse.methods import get_method
from fslcourse.methods.base import METHODS, FewShotClassifier, Preset, class_confidences, n_way_of, prototypes, register_preset, round_robin
from fslcourse.methods.maml import MAML


@given(st.lists(st.integers(1, 4), min_size=1, max_size=5), st.integers(1, 7), st.integers(0, 10_000))
def test_round_robin_takes_each_class_in_turn(counts, m, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(counts)).repeat_interleave(torch.tensor(counts))
    labels = labels[torch.randperm(len(labels), generator=g)]  # any order
    idx = round_robin(labels, m)
    assert n_way_of(labels) == len(counts) and idx.shape == (len(counts) * m,)
    assert labels[idx].tolist() == [k for k in range(len(counts)) for _ in range(m)]  # class-major
    for k, c in enumerate(counts):
        own = torch.nonzero(labels == k).flatten().tolist()
        assert idx[k * m:(k + 1) * m].tolist() == [own[i % c] for i in range(m)]  # each in turn, then again


def test_n_way_is_the_highest_label_plus_one_and_prototypes_are_class_means():
    """n_way counts the labels 0 .. max, present or not; a class with no example gets a zero prototype (not 0 / 0 =
    NaN), the last class too (the prototypes are ``(n_way, D)`` whatever the labels hold)."""
    assert n_way_of(torch.tensor([3, 1, 3])) == 4 and n_way_of(torch.tensor([0])) == 1
    g = torch.Generator().manual_seed(0)
    f, y = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.tensor([2, 0, 2, 2, 0, 4, 2])
    protos = prototypes(f, y, 6)
    want = torch.stack([f[y == k].mean(0) if (y == k).any() else torch.zeros(3, dtype=torch.float64) for k in range(6)])
    assert protos.shape == (6, 3) and protos.dtype == torch.float64
    torch.testing.assert_close(protos, want, rtol=1e-12, atol=1e-12)


def _episode(n_way=3, n_shot=2, n_query=2):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n_way * n_shot, 1, 28, 28, generator=g), torch.arange(n_way).repeat_interleave(n_shot),
            torch.rand(n_query, 1, 28, 28, generator=g))


@pytest.mark.parametrize("change, message", [
    ({"query_x": torch.zeros(2, 784)}, "support_x and query_x must be (n, C, H, W); got (6, 1, 28, 28) and (2, 784) "
                                      "(for a batch of episodes, call predict once per episode)"),
    ({"support_x": torch.zeros(1, 6, 1, 28, 28)}, "support_x and query_x must be (n, C, H, W); got (1, 6, 1, 28, 28)"),
    ({"query_x": torch.zeros(2, 3, 28, 28)}, "support_x images are (1, 28, 28) but query_x images are (3, 28, 28)"),
    ({"support_x": torch.linspace(-0.5, 0.5, 6 * 784).view(6, 1, 28, 28)}, "support_x's pixels lie in [-0.5, 0.5], not "
                                                                          "[0, 1]"),  # centred images: refused too
    ({"query_x": torch.linspace(0, 2, 2 * 784).view(2, 1, 28, 28)}, "query_x's pixels lie in [0, 2], not [0, 1]"),
    ({"support_y": torch.tensor([0, 0, 1, 1, 2])}, "support_y must be (6,) to match support_x, got (5,)"),
    ({"support_y": torch.tensor([[0, 0, 1, 1, 2, 2]])}, "support_y must be (6,) to match support_x, got (1, 6)"),
    ({"support_y": torch.tensor([[0], [0], [1], [1], [2], [2]])}, "support_y must be (6,) to match support_x, got (6, 1)"),
    ({"support_y": torch.tensor([1, 1, 2, 2, 4, 4])}, "support_y must use every label 0..4; labels [0, 3] are missing"),
    # a student's list, NumPy array or float/int32/bool labels reached torch ('list' has no attribute 'dim',
    # "bincount_cpu" not implemented for 'Float', one_hot of an IntTensor), negatives and an empty set bincount/max
    ({"support_x": [[0.0]] * 6}, "support_x is a list, not a torch tensor; convert it, e.g. torch.as_tensor(x, "),
    ({"support_y": torch.arange(3).repeat_interleave(2).numpy()}, "support_y is a ndarray, not a torch tensor"),
    ({"support_y": torch.arange(3.0).repeat_interleave(2)}, "support_y is torch.float32; labels must be torch.int64 "
                                                            "(long) in 0..n_way-1, e.g. support_y.long()"),
    ({"support_y": torch.arange(3, dtype=torch.int32).repeat_interleave(2)}, "support_y is torch.int32; labels must"),
    ({"support_y": torch.tensor([0, 0, 1, 1, -1, -1])}, "support_y holds negative labels [-1]; labels must be 0..n_way-1"),
    ({"support_x": torch.zeros(0, 1, 28, 28), "support_y": torch.zeros(0, dtype=torch.long)},
     "support_x holds no images; an episode needs at least one support example per class"),
    # 14x14 or 32x32 images: a raw torch error ("Output size is too small", "mat1 and mat2 shapes cannot be
    # multiplied") in most committed methods, and numbers from networks trained on 28x28 in the others
    ({"support_x": torch.zeros(6, 1, 32, 32), "query_x": torch.zeros(2, 1, 32, 32)},
     "the images are (1, 32, 32), not (1, 28, 28): the course's models read Omniglot's greyscale 28x28 inputs; "
     "make them with fslcourse.data.load_image or preprocess_image (any picture size)"),
    ({"support_x": torch.zeros(6, 3, 28, 28), "query_x": torch.zeros(2, 3, 28, 28)}, "the images are (3, 28, 28)"),
])
def test_check_support_names_the_bad_value(change, message):
    parts = dict(zip(("support_x", "support_y", "query_x"), _episode()))
    assert FewShotClassifier.check_support(*parts.values()) == 3
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        FewShotClassifier.check_support(**{**parts, **change})


@pytest.mark.parametrize("name", ["protonet", "relation", "mtl"])  # the base loss and the two that override it
def test_loss_refuses_query_labels_it_cannot_score(name):
    """Labels outside 0..n_way-1 raised torch's 'Target 5 is out of bounds', an empty query set gave a NaN loss
    without a word, and a tuple for the episode an AttributeError."""
    from fslcourse.data.episodes import Episode

    model = get_method(name)()
    sx, sy, qx = _episode(n_query=2)
    ep = Episode(sx, sy, qx, torch.tensor([0, 1]), torch.arange(3), 3, 2, 1)
    assert torch.isfinite(model.loss(ep)[0])
    for change, message in [({"query_y": torch.tensor([0, 3])}, "query_y holds labels [3] outside 0..2"),
                            ({"query_y": torch.tensor([0.0, 1.0])}, "query_y is torch.float32; labels must be"),
                            ({"query_y": torch.tensor([0])}, "query_y must be (2,) to match query_x, got (1,)"),
                            ({"query_x": qx[:0], "query_y": torch.zeros(0, dtype=torch.long)},
                             "query_x holds no images; a loss needs at least one query example")]:
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            model.loss(Episode(**{**ep.__dict__, **change}))
    with pytest.raises(ValueError, match=r"^loss takes one Episode .*, not a tuple$"):
        model.loss((sx, sy, qx, torch.tensor([0, 1])))


def test_class_confidences_clip_scores_to_0_1_and_softmax_logits():
    class Scores:
        outputs = "scores"

    out = torch.tensor([[1.25, -0.5, 0.3], [0.0, 1.0, 0.6]])
    torch.testing.assert_close(class_confidences(Scores(), out), torch.tensor([[1.0, 0.0, 0.3], [0.0, 1.0, 0.6]]))
    torch.testing.assert_close(class_confidences(object(), out), out.exp() / out.exp().sum(1, keepdim=True))


def test_a_preset_is_its_class_with_defaults_and_its_own_name():
    fomaml = get_method("fomaml")
    assert isinstance(fomaml, Preset) and fomaml.cls is MAML and fomaml.trainable and fomaml.needs_grad_at_test
    model = fomaml(n_way=3, hidden=4)
    assert isinstance(model, MAML) and model.first_order and model.name == "fomaml"
    assert fomaml(**model.config()).config() == model.config()  # rebuilt from its config, as a checkpoint is
    assert not fomaml(hidden=4, first_order=False).first_order  # a caller's argument wins
    assert fomaml.RECIPES["quick"].model["hidden"] == 32 and MAML.RECIPES["quick"].model["hidden"] == 64
    with pytest.raises(ValueError, match="a method is already registered as 'fomaml'"):
        register_preset("fomaml", MAML, first_order=True)
    assert "fomaml" in METHODS


SEAM_METHODS = sorted(name for name, cls in METHODS.items() if cls().has_embedding_seam)


@pytest.mark.parametrize("name", SEAM_METHODS)
def test_predict_is_embed_then_classify_embeddings(name, glyphs):
    """The documented seam: ``predict(s, y, q) == classify_embeddings(embed(s), y, embed(q))`` in eval mode,
    which feature-space augmentation relies on; a method whose predict takes another path fails here."""
    from fslcourse.data import EpisodeSampler

    torch.manual_seed(0)
    model = METHODS[name]().eval()
    ep = EpisodeSampler(glyphs[2], 5, 2, 3, seed=0).sample()
    with torch.no_grad():
        torch.manual_seed(1)  # a method that draws (a new head's start) draws the same in both paths
        direct = model.predict(ep.support_x, ep.support_y, ep.query_x)
        torch.manual_seed(1)
        seam = model.classify_embeddings(model.embed(ep.support_x), ep.support_y, model.embed(ep.query_x))
    assert direct.shape == (15, 5)
    torch.testing.assert_close(direct, seam, rtol=1e-4, atol=1e-4)


def test_the_seam_list_holds_the_embedding_methods():
    assert {"protonet", "finetune", "parameter-prediction", "hallucinating-protonet"} <= set(SEAM_METHODS)


def test_a_preset_can_be_copied_and_pickled_like_the_class_it_stands_for():
    """copy.copy, copy.deepcopy and pickle hit __getattr__('cls') on a blank instance: RecursionError."""
    import copy
    import pickle

    from fslcourse.methods import get_method

    fomaml = get_method("fomaml")
    for twin in (copy.copy(fomaml), copy.deepcopy(fomaml), pickle.loads(pickle.dumps(fomaml))):
        assert twin.name == "fomaml" and twin.RECIPES == fomaml.RECIPES and twin().first_order
    assert fomaml.__name__ == "MAML"  # the class's own attributes, dunders too, as before
    maml = get_method("maml")
    assert isinstance(fomaml(), fomaml) and not isinstance(maml(), fomaml) and isinstance(fomaml(), maml)


def test_importing_the_package_registers_every_method_module():
    """A module of ``methods/`` with a ``@register`` that ``methods/__init__.py`` does not import registers nothing
    for the command line (`train NAME` said only "neither a registered method ...") while its own test, which
    imports it, passes: a fresh Python that imports only the package must have loaded every such module."""
    import subprocess
    import sys
    from pathlib import Path

    import fslcourse.methods as pkg

    folder = Path(pkg.__file__).parent
    registering = sorted(f"fslcourse.methods.{f.stem}" for f in folder.glob("*.py")
                         if f.stem != "__init__" and "@register(" in f.read_text())
    assert "fslcourse.methods.protonet" in registering  # the scan sees the modules it should
    loaded = subprocess.run([sys.executable, "-c", "import sys, fslcourse.methods; print(' '.join(sys.modules))"],
                            capture_output=True, text=True, check=True).stdout.split()
    missing = [m for m in registering if m not in loaded]
    assert not missing, f"{missing}: add each to the `from . import (...)` list of fslcourse/methods/__init__.py"
