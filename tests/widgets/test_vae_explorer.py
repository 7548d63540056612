"""The VAE explorer: every control changes what is shown, and what is shown is what the VAE computes."""
import re

import pytest
import torch

from fslcourse.generative.vae import ConditionalVAE
from fslcourse.widgets.plotting import principal_axes
from fslcourse.widgets.vae_explorer import VAEExplorer


def _explorer(glyphs, **kw):
    torch.manual_seed(0)
    vae = ConditionalVAE(hidden=8).eval()
    with torch.no_grad():  # a random but non-degenerate decoder
        for p in vae.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return vae, VAEExplorer(vae, glyphs[2], n_classes=5, n_shot=2, n_generated=3, n_steps=5, **kw)


def test_principal_axes_match_the_covariance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=g) * torch.tensor([4.0, 2.0, 0.5, 0.1, 0.1])
    xy, axes, std = principal_axes(x)
    evals = torch.linalg.eigvalsh(torch.cov(x.T.double())).flip(0)
    assert torch.allclose(std.double() ** 2, evals[:2], rtol=1e-4) and torch.allclose(xy.var(0).double(), evals[:2],
                                                                                       rtol=1e-4)
    assert torch.allclose(axes @ axes.T, torch.eye(2), atol=1e-5)


def test_map_and_generation_show_the_chosen_character(glyphs):
    vae, ex = _explorer(glyphs)
    s = ex.shown
    assert s["map_xy"].shape == (5 * 20, 2) and s["labels"].bincount().tolist() == [20] * 5
    assert s["support"].shape == (2, 1, 28, 28) and s["generated"].shape == (3, 1, 28, 28)
    # the support drawings are real drawings of the chosen character
    cls = int(ex.classes[0])
    real = glyphs[2].get(torch.tensor([cls]), s["support_ids"][None])[0]
    assert torch.equal(s["support"], real)
    # the generated ones are the VAE's prototype-mode samples for that support set
    g = torch.Generator().manual_seed(s["generation"])
    torch.randperm(20, generator=g)
    want, _ = vae.generate(real, torch.zeros(2, dtype=torch.long), 3, g)
    assert torch.allclose(s["generated"], want, atol=1e-6)
    assert "2 real + 3 generated" in ex.status.value


def test_controls_change_what_is_shown(glyphs):
    vae, ex = _explorer(glyphs)
    walk0 = ex.shown["walk_image"].clone()
    ex.walk_1.value = 2.0
    assert ex.shown["walk_steps"].tolist() == [2.0, 0.0] and not torch.allclose(ex.shown["walk_image"], walk0)
    assert "+2.00" in ex.fig.axes[1].get_title(loc="left")
    ex.walk_1.value = 0.0
    assert torch.allclose(ex.shown["walk_image"], walk0)
    gen0, ids0 = ex.shown["generated"].clone(), ex.shown["support_ids"].clone()
    ex.generate.click()
    assert not torch.equal(ex.shown["generated"], gen0) or not torch.equal(ex.shown["support_ids"], ids0)
    ex.n_generated.value = 6
    ex.n_shot.value = 4
    assert ex.shown["generated"].shape[0] == 6 and ex.shown["support"].shape[0] == 4
    assert len(ex.fig.axes) == 1 + 1 + 5 + 10
    ex.character.value = 3
    assert ex.shown["character"] == 3 and ex.shown["class_id"] == int(ex.classes[3])


def test_interpolation_runs_between_the_two_characters(glyphs):
    vae, ex = _explorer(glyphs)
    ex.from_.value, ex.to.value = 1, 4
    interp = ex.shown["interpolation"]
    assert interp.shape == (5, 1, 28, 28)
    with torch.no_grad():
        ends = [torch.sigmoid(vae.decode(ex.mu[ex.labels == k].mean(0)[None], ex.context[k][None]))[0]
                for k in (1, 4)]
    assert torch.allclose(interp[0], ends[0], atol=1e-5) and torch.allclose(interp[-1], ends[1], atol=1e-5)
    assert not torch.allclose(interp[2], interp[0])


def test_bad_constructor_arguments_are_one_line_errors(glyphs):
    """n_steps=1 interpolated "from character 0 to 1" showing character 0 only; n_classes=2.5 was a TypeError,
    seed=2**64 torch's 'Overflow when unpacking long long'."""
    vae, _ = _explorer(glyphs)
    for kwargs, says in [({"n_steps": 1}, "n_steps=1: give a whole number of at least 2"),
                         ({"n_classes": 2.5}, "n_classes=2.5: give a whole number"),
                         ({"seed": 2**64}, "seed=18446744073709551616 must be a whole number from 0 to 2")]:
        with pytest.raises(ValueError, match=f"^{re.escape(says)}"):
            VAEExplorer(vae, glyphs[2], **kwargs)
    ex = VAEExplorer(vae, glyphs[2], n_classes=2, n_steps=2, seed=2**64 - 1)
    ex.generate.click()  # the generation seed wraps round to 0 (it overflowed, and the click was lost)
    assert ex.generation == 0 and ex.shown["generation"] == 0
