"""The pixel-space nearest-prototype baseline against a brute-force reference."""
import pytest
import torch

from fslcourse.data import EpisodeSampler
from fslcourse.methods import PixelPrototype, get_method
from fslcourse.methods.base import prototypes


def test_logits_equal_brute_force(glyphs):
    ep = EpisodeSampler(glyphs[2], 5, 3, 4, seed=1).sample()
    logits = PixelPrototype().predict(ep.support_x, ep.support_y, ep.query_x)
    protos = torch.stack([ep.support_x[ep.support_y == k].mean(0) for k in range(5)])
    want = -((ep.query_x[:, None] - protos[None]) ** 2).flatten(2).sum(-1)
    assert logits.shape == (20, 5)
    assert torch.allclose(logits, want, rtol=1e-4, atol=1e-3)


def test_prototypes_helper_is_order_free():
    f = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([1, 0, 1, 2, 0, 2])
    want = torch.stack([f[y == k].mean(0) for k in range(3)])
    assert torch.allclose(prototypes(f, y, 3), want)


def test_registry_and_errors():
    assert get_method("pixel") is PixelPrototype
    with pytest.raises(ValueError, match="method 'nope' is not registered; known methods: .*pixel"):
        get_method("nope")
    x = torch.zeros(4, 1, 28, 28)
    with pytest.raises(ValueError, match=r"labels \[1\] are missing"):
        PixelPrototype().predict(x, torch.tensor([0, 0, 2, 2]), x)
    with pytest.raises(ValueError, match="must be \\(n, C, H, W\\)"):
        PixelPrototype().predict(x[None], torch.tensor([0, 1, 0, 1]), x)


def test_beats_chance_on_glyphs(glyphs):
    from fslcourse.evaluate import evaluate
    res = evaluate(PixelPrototype(), glyphs[2], 5, 1, 5, 50, seed=0)
    assert res.accuracy > 40  # chance is 20%
