"""Omniglot splits on the real data: counts, disjointness, preprocessing, cache."""

import pytest
import torch

from fslcourse.data import load_image
from fslcourse.data.omniglot import VAL_ALPHABETS, cache_dir, data_roots, find_omniglot, load_omniglot


def test_split_sizes_follow_the_protocol(omniglot):
    # background: 30 alphabets / 964 characters; evaluation: 20 alphabets / 659 characters (MANIFEST.md)
    assert len(omniglot.train.alphabet_names) + len(omniglot.val.alphabet_names) == 30
    assert omniglot.train.images.shape[0] + omniglot.val.images.shape[0] == 964
    assert omniglot.test.images.shape[0] == 659 and len(omniglot.test.alphabet_names) == 20
    assert set(omniglot.val.alphabet_names) == set(VAL_ALPHABETS)
    for s in (omniglot.train, omniglot.val, omniglot.test):
        assert s.images.shape[1:] == (20, 28, 28) and s.images.dtype == torch.uint8
        assert s.n_classes == 4 * s.images.shape[0]


def test_no_class_or_alphabet_in_two_splits(omniglot):
    names = [set(s.base_names) for s in (omniglot.train, omniglot.val, omniglot.test)]
    alphas = [set(s.alphabet_names) for s in (omniglot.train, omniglot.val, omniglot.test)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not names[i] & names[j]
            assert not alphas[i] & alphas[j]


def test_load_image_convention(omniglot):
    png = next((omniglot.root / "images_evaluation").rglob("*.png"))
    x = load_image(png)
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert x.mean() < 0.5, "ink is 1 and paper is 0, so most pixels are near 0"
    # the bulk loader uses exactly the same preprocessing
    alpha, char = png.parent.parent.name, png.parent.name
    idx = omniglot.test.base_names.index(f"{alpha}/{char}")
    pos = sorted(png.parent.glob("*.png")).index(png)
    assert torch.equal((x[0] * 255).round().to(torch.uint8), omniglot.test.images[idx, pos])


def test_cache_roundtrip_gives_identical_tensors(omniglot, tmp_path, monkeypatch):
    cached = load_omniglot(progress=False)  # from the warm cache
    assert torch.equal(cached.test.images, omniglot.test.images)
    assert any(p.name.startswith("omniglot-28px-") for p in cache_dir().iterdir())


def test_missing_data_without_download_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("FSLCOURSE_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("FSLCOURSE_CACHE", str(tmp_path / "cache"))
    assert find_omniglot() is None
    with pytest.raises(FileNotFoundError, match="set FSLCOURSE_DATA"):
        load_omniglot(download=False)
    assert data_roots()[0] == tmp_path / "nothing"


def test_fslcourse_data_is_looked_at_first(tmp_path, monkeypatch):
    for part in ("images_background", "images_evaluation"):
        (tmp_path / "omniglot" / part).mkdir(parents=True)
    monkeypatch.setenv("FSLCOURSE_DATA", str(tmp_path))
    assert find_omniglot() == tmp_path / "omniglot"
