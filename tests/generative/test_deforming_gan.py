"""The DAGAN with a deforming generator: a copy at initialisation, seeded class-major samples, the critic's
game trains it, and every recipe runs two steps and loads back from its checkpoint."""
from types import SimpleNamespace

import pytest
import torch

from fslcourse.data.procedural import make_glyph_split
from fslcourse.generative.gan import RECIPES_DEFORMING, DeformingGenerator


def drawings(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28)
    for i in range(n):
        r = int(torch.randint(5, 20, (1,), generator=g))
        x[i, 0, r:r + 3, 5:23] = 1.0
        x[i, 0, 5:23, r:r + 2] = 1.0
    return x


def test_a_new_generator_copies_its_source():
    torch.manual_seed(0)
    x, y = drawings(), torch.arange(3)
    out, labels = DeformingGenerator().generate(x, y, 2, torch.Generator().manual_seed(0))
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]
    torch.testing.assert_close(out, x[[0, 0, 1, 1, 2, 2]], atol=1e-5, rtol=0)


def test_a_decoded_translation_moves_the_drawing_by_whole_pixels():
    """Closed form: an affine offset of 2/28 in grid_sample's [-1, 1] coordinates reads each pixel from its right
    neighbour, so the drawing moves one pixel left, for any z."""
    gen = DeformingGenerator()
    with torch.no_grad():
        gen.decoder[-1].bias[2] = (2 / 28) / 0.1  # theta[0, 2] (scaled by 0.1 in warp)
    x = drawings(2)
    out = gen(x, torch.randn(2, gen.z_dim))
    shifted = torch.zeros_like(x)
    shifted[..., :-1] = x[..., 1:]
    torch.testing.assert_close(out, shifted, atol=1e-5, rtol=0)


def test_the_generator_can_only_move_ink():
    """Whatever its weights, a deforming generator resamples its source: a blank source stays blank, and every
    output pixel lies between the source's darkest and brightest (bilinear reads never add ink)."""
    torch.manual_seed(0)
    gen = DeformingGenerator()
    with torch.no_grad():
        for p in gen.decoder.parameters():
            p.normal_(0, 0.3)
    z = torch.randn(3, gen.z_dim)
    assert torch.equal(gen(torch.zeros(3, 1, 28, 28), z), torch.zeros(3, 1, 28, 28))
    grey = 0.25 + 0.5 * drawings(3)  # ink 0.75 on a 0.25 background
    out = gen(grey, z)
    assert out.max() <= 0.75 + 1e-6 and not torch.equal(out, grey)


def test_samples_are_seeded_and_in_range():
    torch.manual_seed(0)
    gen = DeformingGenerator()
    with torch.no_grad():
        gen.decoder[-1].weight.normal_(0, 0.1)
    x, y = drawings(2), torch.arange(2)
    a, _ = gen.generate(x, y, 3, torch.Generator().manual_seed(1))
    b, _ = gen.generate(x, y, 3, torch.Generator().manual_seed(1))
    c, _ = gen.generate(x, y, 3, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c) and a.min() >= 0 and a.max() <= 1


@pytest.fixture(scope="module")
def data():
    return SimpleNamespace(train=make_glyph_split(70, 20, seed=31, name="train"),
                           val=make_glyph_split(20, 20, seed=32, name="val"),
                           test=make_glyph_split(20, 20, seed=33, name="test"))


@pytest.mark.parametrize("recipe_name", ["quick", "full"])
def test_every_recipe_runs_two_steps_and_loads_back(recipe_name, data, tmp_path, monkeypatch):
    import fslcourse.training.generators as G
    from fslcourse.training import load_or_train

    short = {k: r.replace(steps=2, val_every=1, state_every=1, val_n_way=5) for k, r in RECIPES_DEFORMING.items()}
    monkeypatch.setattr(G, "DEFORMING_GAN", short)
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 8))
    path = tmp_path / "dgan.pt"
    out = load_or_train("deformation-gan", recipe_name, data=data, backbone=backbone, device="cpu", progress=False,
                        path=path)
    ckpt = out["checkpoint"]
    assert out["trained"] and ckpt["history"]["steps"] == 2 and ckpt["recipe"]["options"]["generator"] == "deformation"
    assert 0 <= ckpt["metrics"]["faithful"] <= 100 and len(ckpt["history"]["val_faithful"]) == 2
    again = load_or_train("deformation-gan", recipe_name, data=data, device="cpu", progress=False, path=path)
    assert not again["trained"] and again["source"]["sha256"] == out["source"]["sha256"]
    for a, b in zip(out["model"].state_dict().values(), again["model"].state_dict().values()):
        assert torch.equal(a, b)
    assert G.CHECKPOINT_FAMILY["deformation-gan"] == "deformation-gan" and "deformation-gan" in G.FAMILIES
