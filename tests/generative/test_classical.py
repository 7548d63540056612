"""The untrained controls: deformations keep the drawing (identity at zero strength), copies + noise are copies."""
import pytest
import scipy.stats
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


def test_copy_noise_is_zero_mean_gaussian_of_its_std_and_seeded():
    """On grey drawings (0.5, far from the clip) the noise is N(0, noise^2): a one-sided or uniform draw, or one
    of another scale, fails; the same seed gives the same samples, another seed others."""
    x, y = torch.full((2, 1, 28, 28), 0.5), torch.arange(2)
    out, _ = CopyNoise(noise=0.1).generate(x, y, 50, seed=0)
    eps = (out - 0.5).flatten().double()  # 78,400 draws
    assert eps.mean().abs() < 0.002 and eps.std().item() == pytest.approx(0.1, rel=0.02)
    assert scipy.stats.kurtosis(eps.numpy()) == pytest.approx(0.0, abs=0.1)  # Gaussian: excess kurtosis 0 (uniform: -1.2)
    again, _ = CopyNoise(noise=0.1).generate(x, y, 50, seed=0)
    other, _ = CopyNoise(noise=0.1).generate(x, y, 50, seed=1)
    assert torch.equal(out, again) and not torch.equal(out, other)


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
    with pytest.raises(ValueError, match=r"alpha=-1.0 >= 0"):
        Deformation(alpha=-1.0)


def _read_from(deformation, n=40, seed=0):
    """Where each output pixel of ``deformation.deform`` read the input: ``(n, 2, 28, 28)`` (column, row) in pixels,
    NaN where the read reached outside the image. The input's channels are column / 27, row / 27 and ones:
    bilinear sampling of a linear ramp returns the position it reads, exactly, and the ones channel is 1 only
    where the whole read was inside."""
    from fslcourse.generative.augment import seeded

    ramp = torch.arange(28.0) / 27
    x = torch.stack([ramp[None, :].expand(28, 28), ramp[:, None].expand(28, 28), torch.ones(28, 28)])
    out = deformation.deform(x[None].expand(n, -1, -1, -1).contiguous(), seeded(seed))
    src = 27 * out[:, :2]
    return src.masked_fill((out[:, 2:] < 1 - 1e-5).expand(-1, 2, -1, -1), float("nan"))


def _affine_fit(src):
    """Least-squares ``src = L @ (column, row) + t`` per image: ``L (n, 2, 2)``, ``t (n, 2)``, worst residual."""
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    design = torch.stack([cols.flatten(), rows.flatten(), torch.ones(784)], 1).double()  # (784, 3)
    fits, worst = [], 0.0
    for s in src.flatten(2).transpose(1, 2).double():  # (784, 2) per image
        inside = ~s.isnan().any(1)
        sol = torch.linalg.lstsq(design[inside], s[inside]).solution  # (3, 2)
        worst = max(worst, float((design[inside] @ sol - s[inside]).abs().max()))
        fits.append(sol)
    sol = torch.stack(fits)  # (n, 3, 2)
    return sol[:, :2].transpose(1, 2), sol[:, 2], worst


def test_each_affine_part_is_its_map_within_its_range_in_both_directions():
    """Read back the map each deformation applied (output pixel -> input pixel): a rotation is a rotation by at most
    ``rotation`` degrees, a scale ``1 ± scale``, a shear ``± shear``, a shift ``± shift`` of the side, each drawn on
    both sides of zero (degrees taken as radians, a one-sided draw or a wrong matrix entry fail here)."""
    still = dict(rotation=0, scale=0, shear=0, shift=0, alpha=0)
    eye = torch.eye(2, dtype=torch.float64).expand(40, 2, 2)

    lin, t, worst = _affine_fit(_read_from(Deformation(**{**still, "rotation": 20})))
    assert worst < 1e-3  # an affine map, read back exactly
    torch.testing.assert_close(lin @ lin.transpose(1, 2), eye, atol=1e-4, rtol=0)  # a rotation: orthogonal ...
    assert (torch.linalg.det(lin) > 0).all()  # ... and no reflection
    angle = torch.rad2deg(torch.atan2(lin[:, 1, 0], lin[:, 0, 0]))
    assert angle.abs().max() <= 20 + 1e-3 and angle.min() < -12 and angle.max() > 12

    lin, t, _ = _affine_fit(_read_from(Deformation(**{**still, "scale": 0.2})))
    size = 1 / lin[:, 0, 0]  # a drawing grown by `size` reads its input at 1 / size
    torch.testing.assert_close(lin, eye / size[:, None, None], atol=1e-4, rtol=0)
    assert size.min() >= 0.8 - 1e-4 and size.max() <= 1.2 + 1e-4 and size.min() < 0.87 and size.max() > 1.13

    lin, t, _ = _affine_fit(_read_from(Deformation(**{**still, "shear": 0.3})))
    shear = lin[:, 0, 1]
    sheared = eye.clone()
    sheared[:, 0, 1] = shear  # the column read shifts with the row; nothing else changes
    torch.testing.assert_close(lin, sheared, atol=1e-4, rtol=0)
    assert shear.abs().max() <= 0.3 + 1e-4 and shear.min() < -0.2 and shear.max() > 0.2

    lin, t, _ = _affine_fit(_read_from(Deformation(**{**still, "shift": 0.1})))
    torch.testing.assert_close(lin, eye, atol=1e-4, rtol=0)
    assert t.abs().max() <= 0.1 * 28 + 1e-3  # pixels
    assert (t.min(0).values < -1.8).all() and (t.max(0).values > 1.8).all()  # both ways, along both axes


def test_the_elastic_field_moves_each_image_by_up_to_alpha_pixels_smoothly():
    """Simard et al.'s field, smoothed then scaled so that each image's largest displacement is ``alpha`` pixels
    (not half of it, not normalised over the batch) and neighbouring pixels move alike (a field that was not
    smoothed moves them apart by up to 2 alpha)."""
    alpha = 2.0
    src = _read_from(Deformation(rotation=0, scale=0, shear=0, shift=0, alpha=alpha, sigma=3.0), n=20)
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    moved = src - torch.stack([cols, rows])  # (20, 2, 28, 28) pixels, NaN outside
    peak = moved.nan_to_num(0).abs().amax((1, 2, 3))  # (20,) each image's largest displacement
    assert peak.max() <= alpha + 1e-4 and peak.min() >= 0.9 * alpha
    step = torch.cat([(moved[..., 1:] - moved[..., :-1]).flatten(), (moved[..., 1:, :] - moved[..., :-1, :]).flatten()])
    assert step.nan_to_num(0).abs().max() < alpha / 2
