"""Every recipe of every method (quick, full, paper) runs two steps on procedural glyphs and saves a
checkpoint that loads back into the same model, so ``--recipe full`` on a GPU cannot fail on a typo."""
import math
from types import SimpleNamespace

import pytest
import torch

from fslcourse.data import EpisodeSampler
from fslcourse.data.procedural import make_glyph_split
from fslcourse.methods import METHODS
from fslcourse.methods.base import fixed_n_way
from fslcourse.methods.maml_regression import RECIPES as SINUSOID
from fslcourse.methods.mtl import PHASE1
from fslcourse.pretrained import RECIPE_NAMES, load_method
from fslcourse.recipe import Recipe
from fslcourse.training import load_or_train, train
from fslcourse.training.sinusoid import train_sinusoid

TWO_STEPS = dict(steps=2, val_every=1, val_episodes=2, state_every=1)


def distinct_recipes():
    """``(method, recipe name)`` for every recipe object of every method (``paper`` often *is* ``full``)."""
    out = []
    for name, cls in sorted(METHODS.items()):
        seen = []
        for rn, r in getattr(cls, "RECIPES", {}).items():
            if not any(r is s for s in seen):
                out.append((name, rn))
            seen.append(r)
    return out


@pytest.fixture(scope="module")
def data():
    """Enough glyph classes for 128-class pre-training batches and within-alphabet 20-way episodes."""
    return SimpleNamespace(train=make_glyph_split(130, 20, seed=11, name="train"),
                           val=make_glyph_split(80, 20, seed=12, name="val"),
                           test=make_glyph_split(30, 20, seed=13, name="test"))


def test_every_trainable_method_has_quick_full_and_paper_recipes():
    for name, cls in METHODS.items():
        if cls.trainable and not name.startswith("test-"):
            assert {"quick", "full", "paper"} <= set(cls.RECIPES) <= set(RECIPE_NAMES), name
            assert all(isinstance(r, Recipe) for r in cls.RECIPES.values()), name
    assert set(SINUSOID) == {"quick", "full", "paper"}


@pytest.fixture(scope="module")
def full_phase1(data):
    """MTL's full phase 1 (a wide ResNet on 128-class batches) trained two steps once, for the three full phase-2
    presets: each would otherwise train it again (about 20 s each). ``mtl-theta-only``'s own full recipe, which *is*
    this phase 1, still runs through the one loop in its own case, and the quick presets train theirs from the
    recipe."""
    model, _ = train("mtl-theta-only", PHASE1["full"].replace(**TWO_STEPS), data=data, save=False, progress=False,
                     device="cpu", eval_episodes=2)
    return model.backbone.state_dict()


@pytest.mark.parametrize("name,recipe_name", [p for p in distinct_recipes() if not p[0].startswith("test-")])
def test_recipe_runs_two_steps_and_saves_a_loadable_checkpoint(name, recipe_name, data, tmp_path, request):
    recipe = METHODS[name].RECIPES[recipe_name]
    if "alphabets" in recipe.options:  # the scarce setting: some of the glyphs' alphabets stand for Omniglot's
        recipe = recipe.replace(options={"alphabets": data.train.alphabet_names[:3]})
    extra = {}
    if recipe.trainer == "meta-transfer":
        extra["phase1"] = (request.getfixturevalue("full_phase1") if recipe_name != "quick"
                           else PHASE1[recipe_name].replace(**TWO_STEPS))
    out = tmp_path / f"{name}.pt"
    model, result = train(name, recipe.replace(**TWO_STEPS), data=data, out=out, progress=False, device="cpu",
                          eval_episodes=2, **extra)
    assert result.stopped == "steps" and result.steps == 2
    assert all(torch.isfinite(torch.tensor(v)).all() for v in result.log.train.values())
    loaded, ckpt = load_method(out, "cpu", expect=name)
    assert ckpt["recipe"]["model"] == recipe.model and ckpt["steps"] == 2
    assert ckpt["split_protocol"] == "custom" and loaded.checkpoint_source["split"] == "custom"  # the glyph splits
    ep = EpisodeSampler(data.test, fixed_n_way(model) or 5, 1, 2, seed=0).sample()  # a paper's 20-way model: 20
    grad = getattr(model, "needs_grad_at_test", False)
    with torch.set_grad_enabled(grad):
        a, b = (m.predict(ep.support_x, ep.support_y, ep.query_x) for m in (model, loaded))
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("recipe_name", ["quick", "full"])
def test_sinusoid_recipes_run_two_steps(recipe_name):
    models, record = train_sinusoid(recipe_name, steps=2)
    assert set(models) == {"maml_k5", "maml_k10", "pretrained"}
    assert all(len(log["loss"]) == 2 for log in record["logs"].values())


def test_train_sinusoid_command_writes_the_checkpoint_and_refuses_to_overwrite(tmp_path, monkeypatch, capsys):
    """`python -m fslcourse train sinusoid` makes sinusoid-quick.pt through the one loop (here with 2-step recipes)."""
    import fslcourse.training.sinusoid as ts
    from fslcourse.cli import main

    monkeypatch.setitem(ts.RECIPES, "quick", {k: r.replace(steps=2) for k, r in ts.RECIPES["quick"].items()})
    out = tmp_path / "sin.pt"
    assert main(["train", "sinusoid", "--out", str(out)]) == 0
    loaded = load_or_train("sinusoid", path=out)
    models, record = loaded["models"], loaded["record"]
    assert sorted(models) == ["maml_k10", "maml_k5", "pretrained"] and record["iterations"] == 2
    assert main(["train", "sinusoid", "--out", str(out)]) == 2  # exists: refused before any work
    assert "exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert main(["train", "sinusoid", "--steps", "5", "--out", str(tmp_path / "b.pt")]) == 2


def test_mtl_phase_two_starts_from_a_given_conv4_backbone(data):
    """``train("mtl", ..., phase1=state_dict)``: phase 2 on the caller's backbone (the learning curves' MTL on Conv-4);
    Θ is exactly the given weights, only Φ and θ's temperature change, and a ResNet's weights are refused."""
    from fslcourse.models import Conv4, ResNetSmall

    torch.manual_seed(0)
    given = {k: v.clone() for k, v in Conv4(hidden=8).state_dict().items()}
    recipe = METHODS["mtl"].RECIPES["quick"].replace(model={"backbone": "conv4", "hidden": 8}, **TWO_STEPS)
    model, result = train("mtl", recipe, data=data, save=False, progress=False, device="cpu", phase1=given)
    assert result.stopped == "steps"
    theta = {k.replace(".conv.", "."): v for k, v in model.backbone.state_dict().items()
             if not k.endswith((".scale", ".shift"))}
    assert theta.keys() == given.keys() and all(torch.equal(theta[k], given[k]) for k in given)
    assert any(not torch.equal(p, torch.ones_like(p)) for n, p in model.backbone.named_parameters() if n.endswith("scale"))
    with pytest.raises(ValueError, match=r"does not match Conv4\(8\)"):
        train("mtl", recipe, data=data, save=False, progress=False, device="cpu",
              phase1=ResNetSmall(widths=(4, 6, 8)).state_dict())


# Each generator family's recipe table, as its loader reads it (``fslcourse.training.generators``).
GENERATOR_TABLES = {"vae": "VAE", "gan": "GAN", "diffusion": "DIFFUSION", "deformation-vae": "DEFORMATION_VAE",
                    "deformation-gan": "DEFORMING_GAN"}
# Run two steps elsewhere, with checks of their own: the DAGAN paper's UResNet run (on four characters a batch,
# tests/generative/test_uresnet.py) and the deformation models (tests/generative/test_deformation_vae.py,
# test_deforming_gan.py).
ELSEWHERE = {("gan", "paper"), ("deformation-vae", "quick"), ("deformation-vae", "full"),
             ("deformation-gan", "quick"), ("deformation-gan", "full")}


def distinct_generator_recipes():
    """``(family, recipe name)`` for every distinct recipe of every generator family (``paper`` often trains as
    ``full``, its note saying where it departs from the paper: it is not run twice)."""
    import fslcourse.training.generators as G

    def same(r, s):  # trains the same way: only the note (documentation) may differ
        if isinstance(r, dict) or isinstance(s, dict):
            return isinstance(r, dict) and isinstance(s, dict) and r.keys() == s.keys() and all(same(r[k], s[k]) for k in r)
        return r.differs_from(s.as_dict()) == []

    out = []
    for family, table in GENERATOR_TABLES.items():
        seen = []
        for rn, r in getattr(G, table).items():
            if not any(same(r, s) for s in seen):
                out.append((family, rn))
            seen.append(r)
    return out


def _two_steps(r):
    return {k: _two_steps(v) for k, v in r.items()} if isinstance(r, dict) else r.replace(**TWO_STEPS)


def test_every_generator_family_and_recipe_is_covered():
    import fslcourse.training.generators as G

    assert set(GENERATOR_TABLES) == set(G.FAMILIES)
    assert ELSEWHERE <= set(distinct_generator_recipes())
    assert {rn for table in GENERATOR_TABLES.values() for rn in getattr(G, table)} == {"quick", "full", "paper"}


@pytest.mark.parametrize("family,recipe_name", [p for p in distinct_generator_recipes() if p not in ELSEWHERE])
def test_generator_recipe_runs_two_steps_and_saves_a_loadable_checkpoint(family, recipe_name, data, tmp_path,
                                                                         monkeypatch):
    """Each generator recipe (quick, full, paper) trains two steps through ``load_or_train`` and loads back:
    pixel and feature-space models alike (the VAE family's feature VAE, the GAN family's hallucinator)."""
    import fslcourse.training.generators as G
    from fslcourse.methods.protonet import ProtoNet

    for table in (GENERATOR_TABLES[family], "HALLUCINATOR"):
        monkeypatch.setattr(G, table, {k: _two_steps(v) for k, v in getattr(G, table).items()})
    torch.manual_seed(0)
    backbone = ProtoNet(backbone_kwargs={"hidden": 8}).backbone.eval()
    path = tmp_path / f"{family}.pt"
    out = load_or_train(family, recipe_name, data=data, backbone=backbone, device="cpu", progress=False, path=path)
    assert out["trained"] and path.exists() and out["source"]["file"] == path.name
    again = load_or_train(family, recipe_name, data=data, backbone=backbone, device="cpu", progress=False, path=path)
    assert not again["trained"] and again["source"] == out["source"]
    models = [k for k, v in out.items() if isinstance(v, torch.nn.Module)]
    assert models and {"vae": {"pixel", "feature"}, "gan": {"wgan-gp", "standard", "feature"},
                       "diffusion": {"model"}}[family] == set(models)
    for k in models:
        a, b = out[k].state_dict(), again[k].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a), (family, k)
        assert all(torch.isfinite(v).all() for v in a.values() if v.is_floating_point()), (family, k)
    entries = {"vae": lambda c: [c["pixel"], *c["feature"].values()],
               "gan": lambda c: [*c["pixel"].values(), *c["feature"].values()], "diffusion": lambda c: [c]}[family]
    for entry in entries(out["checkpoint"]):
        assert entry["history"]["steps"] == 2 and entry["recipe"]["steps"] == 2
        # every model of the file records the metrics measured when it was saved
        values = [v for v in entry["metrics"].values() if isinstance(v, float)]
        assert values and all(math.isfinite(v) for v in values), (family, entry["metrics"])
    if family == "vae":  # measured on the weights that were saved, not on others
        measured = G._elbo_metrics(again["pixel"], data.val, G.VAE[recipe_name]["pixel"])
        assert measured == out["checkpoint"]["pixel"]["metrics"]


def test_mtl_phase1_at_another_seed_is_trained_from_that_seed_and_said(monkeypatch, capsys):
    """`train mtl --seed 5` finds the committed phase 1 at seed 0: it trains phase 1 again, from seed 5 (it used to
    train it from the recipe's seed 0, the very file it had refused) and says so before the long step."""
    import fslcourse.training.api as api
    from fslcourse.methods import get_method

    calls = []

    class Stop(Exception):
        pass

    def fake_train(name, recipe, **kw):
        calls.append((name, recipe, kw.get("seed")))
        raise Stop

    monkeypatch.setattr(api, "train", fake_train)
    recipe = get_method("mtl").RECIPES["quick"].replace(seed=5)
    with pytest.raises(Stop):
        api._phase1_state("mtl", "quick", recipe, data=None, device="cpu", progress=True)
    assert calls == [("mtl-theta-only", "quick", 5)]
    assert "mtl: phase 1 is not committed at seed 5 (mtl-theta-only-quick.pt); training mtl-theta-only" in \
        capsys.readouterr().err


def test_a_recipe_differs_from_a_saved_one_in_what_trains_not_in_its_note():
    from fslcourse.recipe import Recipe

    r = Recipe(steps=10, lr=1e-3, note="the paper")
    assert r.differs_from(r.as_dict()) == [] and r.differs_from(r.replace(note="the paper, departures").as_dict()) == []
    assert r.differs_from(r.replace(steps=20, lr=2e-3).as_dict()) == ["lr", "steps"]
    assert r.differs_from({**r.as_dict(), "unknown": 1}) == ["unknown"]
