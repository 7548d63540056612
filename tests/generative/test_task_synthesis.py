"""Task synthesis: a recombined character is exactly the union of the two it names, the scarce split keeps only
its alphabets, the episodic trainer meta-trains on it, and the minimal set is images_background_small1's."""
import os
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from fslcourse.data.procedural import make_glyph_split
from fslcourse.generative.task_synthesis import MINIMAL_ALPHABETS, recombined_characters, scarce_split, with_classes
from fslcourse.methods import ProtoNet
from fslcourse.training.trainers import episodic


@pytest.fixture(scope="module")
def split():
    return make_glyph_split(40, 20, seed=3, name="train")


def test_a_recombined_character_is_the_union_of_the_two_it_names(split):
    new = recombined_characters(split, 25, seed=1)
    assert new.images.shape == (25, *split.images.shape[1:]) and set(new.alphabets) == {"synthetic"}
    index = {n: i for i, n in enumerate(split.base_names)}
    for j, name in enumerate(new.base_names):
        a, b = (index[s] for s in name.split(" + "))
        assert a != b
        assert torch.equal(new.images[j], torch.maximum(split.images[a], split.images[b]))
    assert new.base_names == recombined_characters(split, 25, seed=1).base_names  # seeded
    assert new.base_names != recombined_characters(split, 25, seed=2).base_names


def test_the_scarce_split_keeps_its_alphabets_and_adds_synthetic_classes(split):
    keep = split.alphabet_names[:2]
    small = scarce_split(split, keep)
    assert set(small.alphabets) == set(keep) and small.n_classes == len(split.rotations) * sum(a in keep for a in split.alphabets)
    both = scarce_split(split, keep, recombined=10, seed=0)
    assert both.n_classes == small.n_classes + 10 * len(split.rotations) and torch.equal(both.images[: len(small.images)], small.images)
    with pytest.raises(ValueError, match=r"alphabets \['Nowhere'\] are not in the 'train' split; use some of"):
        split.only_alphabets(["Nowhere"])
    with pytest.raises(ValueError, match="n_characters=0 must be a positive integer"):
        recombined_characters(split, 0, seed=0)
    with pytest.raises(ValueError, match="cannot add characters"):
        with_classes(split, make_glyph_split(3, 10, seed=0))


def test_the_episodic_trainer_meta_trains_on_the_scarce_split(split):
    data = SimpleNamespace(train=split, val=make_glyph_split(10, 20, seed=4, name="val"))
    keep = split.alphabet_names[:2]
    recipe = ProtoNet.RECIPES["minimal-synthetic"].replace(options={"alphabets": keep, "recombined": 7},
                                                           n_way=5, model={"backbone_kwargs": {"hidden": 8}})
    run = episodic("protonet", recipe, data, "cpu")
    train = run.info["train_split"]
    assert train.n_classes == scarce_split(split, keep, 7, recipe.seed).n_classes
    assert set(train.alphabets) == set(keep) | {"synthetic"}
    assert episodic("protonet", ProtoNet.RECIPES["quick"].replace(n_way=5), data, "cpu").info["train_split"] is split


def test_the_minimal_set_is_images_background_small1():
    assert tuple(ProtoNet.RECIPES["minimal"].options["alphabets"]) == MINIMAL_ALPHABETS
    assert ProtoNet.RECIPES["minimal-synthetic"].options["alphabets"] == ProtoNet.RECIPES["minimal"].options[
        "alphabets"]
    official = Path(os.environ.get("FSLCOURSE_DATA", "")) / "omniglot" / "official" / "images_background_small1.zip"
    if not official.exists():
        pytest.skip(f"{official} is not here (set FSLCOURSE_DATA)")
    names = {p.split("/")[1] for p in zipfile.ZipFile(official).namelist() if p.count("/") >= 2 and p.split("/")[1]}
    assert names == set(MINIMAL_ALPHABETS)
