"""The untrained controls: deformations keep the drawing (identity at zero strength), copies + noise are copies."""
import pytest
import torch

from fslcourse.generative.augment import SupportGenerator
from fslcourse.generative.classical import CONTROLS, CopyNoise, Deformation, gaussian_blur


def support(n_way=3, n_shot=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n_way * n_shot, 1, 28, 28, generator=g) > 0.8).float()
    return x, torch.arange(n_way).repeat_interleave(n_shot)


def test_a_deformation_of_zero_strength_is_the_drawing_itself():
    x, y = support()
    out, labels = Deformation(rotation=0, scale=0, shear=0, shift=0, alpha=0).generate(x, y, 4, seed=0)
    assert out.shape == (12, 1, 28, 28) and labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    sources = x[[0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5]]  # each class's drawings in turn
    torch.testing.assert_close(out, sources, atol=1e-5, rtol=0)


def test_a_shift_alone_moves_the_ink_without_changing_it():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 10:18, 12:16] = 1.0
    out, _ = Deformation(rotation=0, scale=0, shear=0, shift=0.1, alpha=0).generate(
        x, torch.zeros(1, dtype=torch.long), 20, seed=0)
    assert torch.allclose(out.flatten(1).sum(1), x.sum().expand(20), rtol=0.02)  # all ink kept, inside the frame
    rows, cols = torch.arange(28.0)[:, None], torch.arange(28.0)[None, :]
    cy, cx = ((out[:, 0] * rows).sum((1, 2)) / out[:, 0].sum((1, 2)), (out[:, 0] * cols).sum((1, 2)) / out[:, 0].sum((1, 2)))
    assert ((cy - 13.5).abs() <= 0.1 * 28 + 1e-3).all() and ((cx - 13.5).abs() <= 0.1 * 28 + 1e-3).all()
    assert (cy - 13.5).abs().max() > 1.5 and (cx - 13.5).abs().max() > 1.5  # it did move, up to 2.8 pixels


def test_deformations_are_seeded_varied_and_keep_the_ink():
    x, y = support(2, 1)
    gen = Deformation()
    a, _ = gen.generate(x, y, 5, seed=3)
    b, _ = gen.generate(x, y, 5, seed=3)
    c, _ = gen.generate(x, y, 5, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a[0], a[1])  # two samples of one class differ
    ink = a.flatten(1).sum(1) / x[[0] * 5 + [1] * 5].flatten(1).sum(1)
    assert ((ink > 0.6) & (ink < 1.6)).all()  # moved, not erased or smeared


def test_gaussian_blur_keeps_a_constant_field_inside_and_matches_its_kernel():
    field = torch.ones(1, 2, 20, 20)
    out = gaussian_blur(field, 1.0)
    torch.testing.assert_close(out[..., 5:15, 5:15], torch.ones(1, 2, 10, 10))
    impulse = torch.zeros(1, 1, 21, 21)
    impulse[0, 0, 10, 10] = 1
    k = gaussian_blur(impulse, 2.0)[0, 0]
    t = torch.arange(-10, 11).float()
    g = torch.exp(-0.5 * (t / 2) ** 2)
    g[t.abs() > 6] = 0
    g = g / g.sum()
    torch.testing.assert_close(k, g[:, None] * g[None, :], atol=1e-6, rtol=1e-4)


def test_copy_noise_is_the_copy_plus_clipped_gaussian_noise():
    x, y = support()
    out, labels = CopyNoise(noise=0.0).generate(x, y, 2, seed=0)
    torch.testing.assert_close(out, x)
    out, _ = CopyNoise(noise=0.1).generate(x, y, 2, seed=0)
    assert out.min() >= 0 and out.max() <= 1 and 0.02 < (out - x).abs().mean() < 0.1


@pytest.mark.parametrize("name", sorted(CONTROLS))  # every control, a new one too
def test_the_controls_are_support_generators_and_refuse_bad_requests(name):
    gen = CONTROLS[name]()
    assert isinstance(gen, SupportGenerator) and gen.space == "pixel" and gen.source is None
    x, y = support()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n_per_class"):
            gen.generate(x, y, bad, seed=0)
    with pytest.raises(ValueError, match="support has shape .6, 784. for 6 labels; a pixel generator takes drawings"):
        gen.generate(x.flatten(1), y, 1, seed=0)
    with pytest.raises(TypeError, match="integer seed"):
        gen.generate(x, y, 1, seed="0")


def test_bad_strengths_are_refused():
    with pytest.raises(ValueError, match="sigma"):
        Deformation(sigma=0)
    with pytest.raises(ValueError, match="noise"):
        CopyNoise(noise=-0.1)
