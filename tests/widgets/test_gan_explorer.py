"""The GAN explorer: every control changes what is shown, and what is shown is what the generator computes."""
import re

import pytest
import torch

from fslcourse.generative.gan import DAGANGenerator
from fslcourse.widgets.gan_explorer import GANExplorer


def _explorer(glyphs):
    torch.manual_seed(0)
    gen = DAGANGenerator(hidden=4, code_dim=8).eval()
    with torch.no_grad():  # a random but non-degenerate generator
        for p in gen.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return gen, GANExplorer(gen, glyphs[2], n_classes=4, n_steps=5, seed=0)


def test_single_view_shows_the_generator_output_for_the_chosen_source_and_z(glyphs):
    gen, ex = _explorer(glyphs)
    s = ex.shown
    cls = int(ex.classes[0])
    assert torch.equal(s["source"], glyphs[2].get(torch.tensor([cls]), torch.tensor([[0]]))[0, 0])
    z = torch.randn(1, gen.z_dim, generator=torch.Generator().manual_seed(0))
    z[0, :3] = 0.0
    with torch.no_grad():
        want = gen(s["source"][None], z)
    assert torch.allclose(s["generated"], want, atol=1e-6)
    # the interpolation's end points are the noise of the two seeds
    assert torch.allclose(s["z_interpolation"][0], ex.noise(1)[0]) and torch.allclose(s["z_interpolation"][-1],
                                                                                     ex.noise(2)[0])
    assert s["interpolation"].shape == (5, 1, 28, 28) and len(ex.fig.axes) == 2 + 5


def test_controls_change_what_is_shown(glyphs):
    gen, ex = _explorer(glyphs)
    g0 = ex.shown["generated"].clone()
    ex.z_1.value = 2.0
    assert ex.shown["z"][0] == 2.0 and not torch.allclose(ex.shown["generated"], g0)
    assert "+2.00" in ex.fig.axes[1].get_title()
    ex.z_1.value = 0.0
    assert torch.allclose(ex.shown["generated"], g0)
    interp0 = ex.shown["interpolation"].clone()
    ex.seed_b.value = 11
    assert not torch.allclose(ex.shown["interpolation"], interp0)
    assert torch.allclose(ex.shown["interpolation"][0], interp0[0])  # t = 0 is still z_A
    src0 = ex.shown["source"].clone()
    ex.source.value = 3
    assert not torch.equal(ex.shown["source"], src0)
    ex.character.value = 2
    assert ex.shown["class_id"] == int(ex.classes[2]) and "character 2" in ex.status.value


def test_sample_grid_view_uses_one_z_per_image(glyphs):
    gen, ex = _explorer(glyphs)
    ex.view.value = "sample grid"
    ex.n_grid.value = 3
    s = ex.shown
    assert s["generated"].shape == (9, 1, 28, 28) and s["z"].shape == (9, gen.z_dim)
    assert len(ex.fig.axes) == 1 + 9 and "9 generated" in ex.status.value
    with torch.no_grad():
        want = gen(s["source"][None].expand(9, -1, -1, -1), ex.noise(0, 9))
    assert torch.allclose(s["generated"], want, atol=1e-6)
    first = s["generated"].clone()
    ex.z_seed.value = 5
    assert not torch.allclose(ex.shown["generated"], first)


def test_controls_a_view_does_not_use_are_greyed_out(glyphs):
    """In the sample grid, z[0..2] and the interpolation seeds redrew identical images: now they are disabled."""
    _, ex = _explorer(glyphs)
    unused_in_grid = (ex.z_1, ex.z_2, ex.z_3, ex.seed_a, ex.seed_b)
    assert not any(c.disabled for c in unused_in_grid) and ex.n_grid.disabled
    ex.view.value = next(v for v in ex.view.options if v != "single")
    assert all(c.disabled for c in unused_in_grid) and not ex.n_grid.disabled
    ex.view.value = "single"
    assert not any(c.disabled for c in unused_in_grid)


def test_a_seed_out_of_torchs_range_is_a_line_in_the_status_line(glyphs):
    """z seed = 2**64 raised torch's 'Overflow when unpacking long long' out of the control's observer."""
    _, ex = _explorer(glyphs)
    for control, name in ((ex.z_seed, "z seed"), (ex.seed_a, "z_A seed"), (ex.seed_b, "z_B seed")):
        for bad in (2**64, -1):
            control.value = bad
            assert ex.shown == {} and ex.status.value.endswith(
                f"{name}={bad} must be a whole number from 0 to 2**64 - 1 (torch's range); e.g. 0")
        control.value = 3
        assert ex.shown["generated"].shape == (1, 1, 28, 28)


def test_bad_constructor_arguments_are_one_line_errors(glyphs):
    """n_steps=1 or 2 was an IndexError while laying out the figure, n_classes=2.5 a TypeError, seed=2**64 torch's overflow."""
    gen, _ = _explorer(glyphs)
    for kwargs, says in [({"n_steps": 1}, "n_steps=1: give a whole number of at least 2"),
                         ({"n_classes": 2.5}, "n_classes=2.5: give a whole number"),
                         ({"seed": 2**64}, "seed=18446744073709551616 must be a whole number from 0 to 2")]:
        with pytest.raises(ValueError, match=f"^{re.escape(says)}"):
            GANExplorer(gen, glyphs[2], **kwargs)
    ex = GANExplorer(gen, glyphs[2], n_classes=2, n_steps=2, seed=2**64 - 1)  # the interpolation seeds wrap round
    assert len(ex.shown["interpolation"]) == 2 and (ex.seed_a.value, ex.seed_b.value) == (0, 1)


@pytest.mark.parametrize("n_grid", [2, 4, 8])
def test_the_sample_grid_sits_side_by_side_not_spread_over_the_figure(glyphs, n_grid):
    """The grid's columns spanned the figure's width while its square cells were sized by its height: gaps wider
    than the samples between them (notebook 08's static figure)."""
    _, ex = _explorer(glyphs)
    ex.view.value, ex.n_grid.value = "sample grid", n_grid
    ex.fig.canvas.draw()  # the square images shrink their axes when drawn
    first, second = (ax.get_position() for ax in ex.fig.axes[1:3])  # two neighbours in the top row
    assert second.x0 - first.x1 < 0.5 * first.width, (first, second)
    assert abs(first.width * ex.fig.get_figwidth() - first.height * ex.fig.get_figheight()) < 1e-6  # square cells
