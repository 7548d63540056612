"""The deformation VAE: the identity at initialisation, a decoded translation is a shift, the ELBO against a
hand computation, seeded samples, training lowers the loss, every recipe runs two steps and loads back."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from fslcourse.data.procedural import make_glyph_split
from fslcourse.generative.deformation_vae import RECIPES, DeformationVAE, heldout_elbo
from fslcourse.generative.vae import kl_to_standard_normal
from fslcourse.training import load_or_train
from fslcourse.training.generators import get_generator, train_vae


def strokes(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28)
    for i in range(n):
        r, c = torch.randint(6, 20, (2,), generator=g).tolist()
        x[i, 0, r:r + 3, 4:24] = 1.0
        x[i, 0, 4:24, c:c + 2] = 1.0
    return x


def test_a_new_model_draws_the_support_drawing_itself():
    torch.manual_seed(0)
    x, y = strokes(3), torch.arange(3)
    out, labels = DeformationVAE().generate(x, y, 2, torch.Generator().manual_seed(0))
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]
    torch.testing.assert_close(out, x[[0, 0, 1, 1, 2, 2]], atol=1e-5, rtol=0)


def test_a_decoded_translation_moves_the_drawing_by_whole_pixels():
    model = DeformationVAE()
    with torch.no_grad():
        model.decoder[-1].bias[2] = (2 / 28) / 0.1  # theta[0, 2]: sample the input one pixel to the right
    x = strokes(2)
    out = model.deform(x, torch.zeros(2, model.z_dim))
    shifted = torch.zeros_like(x)
    shifted[..., :-1] = x[..., 1:]  # the drawing moves one pixel left
    torch.testing.assert_close(out, shifted, atol=1e-5, rtol=0)


def test_the_loss_is_the_negative_elbo_computed_by_hand():
    torch.manual_seed(1)
    model = DeformationVAE(beta=0.5)
    x, s = strokes(3, seed=1), strokes(3, seed=2)
    loss, stats = model.loss(x, s, torch.Generator().manual_seed(5))
    mu, logvar = model.encode(x, s)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(5))
    z = mu + (0.5 * logvar).exp() * eps
    p = model.deform(s, z)
    logits = model.gain * (2 * p - 1)
    recon = -(x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).flatten(1).sum(1)
    kl = kl_to_standard_normal(mu, logvar)
    torch.testing.assert_close(loss, (recon + 0.5 * kl).mean())
    assert stats["elbo"] == pytest.approx(-(recon + kl).mean().item(), rel=1e-5)


def test_samples_are_seeded_and_differ_once_trained_a_little():
    torch.manual_seed(0)
    model = DeformationVAE()
    with torch.no_grad():
        model.decoder[-1].weight.normal_(0, 0.1)  # a decoder that uses z
    x, y = strokes(2), torch.arange(2)
    a, _ = model.generate(x, y, 3, torch.Generator().manual_seed(1))
    b, _ = model.generate(x, y, 3, torch.Generator().manual_seed(1))
    c, _ = model.generate(x, y, 3, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.allclose(a[0], a[1])
    assert a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("bad, match", [(0, "at least one"), (-2, "at least one"), (1.5, "at least one")])
def test_bad_requests_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        DeformationVAE().generate(strokes(2), torch.arange(2), bad)


def test_the_wrong_support_shape_is_refused():
    with pytest.raises(ValueError, match=r"\(n_way \* n_shot, 1, 28, 28\)"):
        DeformationVAE().generate(torch.zeros(2, 784), torch.arange(2), 1)
    with pytest.raises(ValueError, match="one label each"):
        DeformationVAE().generate(strokes(3), torch.arange(2), 1)


@pytest.fixture(scope="module")
def data():
    return SimpleNamespace(train=make_glyph_split(70, 20, seed=21, name="train"),
                           val=make_glyph_split(70, 20, seed=22, name="val"))


def test_training_lowers_the_heldout_loss(data):
    from fslcourse.data import EpisodeSampler

    torch.manual_seed(0)
    model = DeformationVAE(hidden=8)
    ep = EpisodeSampler(data.val, 8, 1, 3, seed=0).sample()
    before = heldout_elbo(model, ep)["elbo"]
    r = RECIPES["quick"].replace(steps=150, n_way=8, n_query=3, lr=3e-3, val_every=0, state_every=0,
                                 model={"hidden": 8})
    hist = train_vae(model, data.train, r, progress=False)
    assert hist["steps"] == 150 and set(hist["seen_classes"]) <= set(range(70))
    assert heldout_elbo(model, ep)["elbo"] > before + 5  # nats per drawing


@pytest.mark.parametrize("recipe_name", ["quick", "full"])
def test_every_recipe_runs_two_steps_and_loads_back(recipe_name, data, tmp_path, monkeypatch):
    import fslcourse.training.generators as G

    short = {k: RECIPES[k].replace(steps=2, val_every=1, state_every=1) for k in RECIPES}
    monkeypatch.setattr(G, "DEFORMATION_VAE", short)
    path = tmp_path / "dv.pt"
    out = load_or_train("deformation-vae", recipe_name, data=data, device="cpu", progress=False, path=path)
    assert out["trained"] and path.exists() and out["checkpoint"]["history"]["steps"] == 2
    assert out["checkpoint"]["recipe"] == short[recipe_name].as_dict()
    again = load_or_train("deformation-vae", recipe_name, data=data, device="cpu", progress=False, path=path)
    assert not again["trained"] and again["source"]["sha256"] == out["source"]["sha256"]
    for a, b in zip(out["model"].state_dict().values(), again["model"].state_dict().values()):
        assert torch.equal(a, b)
    stored = out["checkpoint"]["metrics"]  # the held-out ELBO of the saved weights, on a meta-validation episode
    assert stored["protocol"]["split"] == data.val.name
    assert stored == G._elbo_metrics(again["model"], data.val, short[recipe_name])


def test_it_is_registered_as_a_pixel_support_generator():
    from fslcourse.training.generators import CHECKPOINT_FAMILY, FAMILIES

    assert "deformation-vae" in FAMILIES and CHECKPOINT_FAMILY["deformation-vae"] == "deformation-vae"
    assert callable(get_generator("deformation-vae"))
