"""The file-free task families: glyphs and sinusoids."""
import math

import pytest
import torch

from fslcourse.data import SinusoidTasks, glyph_splits, make_glyph_split


def test_glyphs_are_seeded_and_split_disjoint():
    a = make_glyph_split(n_classes=5, n_examples=3, seed=4)
    b = make_glyph_split(n_classes=5, n_examples=3, seed=4)
    c = make_glyph_split(n_classes=5, n_examples=3, seed=5)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    train, val, test = glyph_splits(n_classes=(4, 3, 2), n_examples=3)
    assert (train.images.shape[0], val.images.shape[0], test.images.shape[0]) == (4, 3, 2)
    flat = [s.images.flatten(1) for s in (train, val, test)]
    assert not any(torch.equal(x, y) for i in range(3) for j in range(3) if i != j
                   for x in flat[i] for y in flat[j])


def test_glyph_instances_are_closer_within_class_than_across():
    s = make_glyph_split(n_classes=10, n_examples=10, seed=0).images.float().flatten(2)  # (10, 10, 784)
    means = s.mean(1)  # (10, 784)
    d = torch.cdist(s.reshape(100, -1), means)  # (100, 10)
    own = d.argmin(1) == torch.arange(10).repeat_interleave(10)
    assert own.float().mean() > 0.8


def test_glyph_bad_sizes():
    with pytest.raises(ValueError, match="n_classes=0 must be a positive integer"):
        make_glyph_split(n_classes=0)


def test_sinusoid_ranges_and_function():
    ep = SinusoidTasks(seed=0).sample(n_tasks=50, n_shot=10, n_query=7)
    assert ep.support_x.shape == (50, 10, 1) and ep.query_y.shape == (50, 7, 1)
    assert ep.amplitude.min() >= 0.1 and ep.amplitude.max() <= 5.0
    assert ep.phase.min() >= 0 and ep.phase.max() <= math.pi
    assert ep.support_x.abs().max() <= 5.0
    want = ep.amplitude[:, None, None] * torch.sin(ep.query_x - ep.phase[:, None, None])
    assert torch.allclose(ep.query_y, want)
    again = SinusoidTasks(seed=0).sample(50, 10, 7)
    assert torch.equal(again.support_y, ep.support_y)
    with pytest.raises(ValueError, match="n_shot=0 must be a positive integer"):
        SinusoidTasks().sample(1, 0, 1)


def test_numpy_integers_count_as_integers():
    import numpy as np

    assert make_glyph_split(np.int64(3), np.int64(2), seed=0).images.shape[:2] == (3, 2)
    ep = SinusoidTasks(seed=0).sample(np.int64(2), np.int64(3), np.int64(4))
    assert ep.support_x.shape == (2, 3, 1) and ep.query_x.shape == (2, 4, 1)
    with pytest.raises(ValueError, match="n_query=2.5 must be a positive integer"):
        SinusoidTasks(seed=0).sample(2, 3, 2.5)
    with pytest.raises(ValueError, match="n_examples=True must be a positive integer"):
        make_glyph_split(3, True)
