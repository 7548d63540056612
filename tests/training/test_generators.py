"""Generator checkpoints: a loader refuses a file of another family (or a method's) before reading or writing it."""
import shutil

import pytest
import torch

import fslcourse.training.generators as G
from fslcourse.io import load_checkpoint
from fslcourse.pretrained import CHECKPOINT_DIR
from fslcourse.training import load_or_train

# data=None would load Omniglot before training: a refused file must fail before that, so a stand-in is enough
LOADERS = {family: (lambda path, family=family: load_or_train(family, data=object(), path=path, progress=False))
           for family in ("vae", "gan", "deformation-vae", "deformation-gan")}


@pytest.mark.parametrize("family", sorted(G.FAMILIES))
def test_the_committed_checkpoints_are_recognised(family):
    assert G.family_of(load_checkpoint(CHECKPOINT_DIR / f"{family}-quick.pt")) == family
    assert G.family_of(load_checkpoint(CHECKPOINT_DIR / "protonet-quick.pt")) == "method 'protonet'"


@pytest.mark.parametrize("family, other", [(f, o) for f in sorted(LOADERS)
                                           for o in ("vae", "gan", "deformation-gan", "diffusion", "protonet") if o != f])
def test_a_checkpoint_of_another_family_is_refused_and_left_alone(family, other, tmp_path):
    path = tmp_path / "foreign.pt"
    shutil.copy(CHECKPOINT_DIR / f"{other}-quick.pt", path)
    before = path.read_bytes()
    found = "method 'protonet'" if other == "protonet" else other
    with pytest.raises(ValueError, match=f"foreign.pt holds a {found} checkpoint, not a {family} one; pass a "
                                         f"{family} checkpoint"):
        LOADERS[family](path)
    assert path.read_bytes() == before  # never trained into, never rewritten


@pytest.mark.parametrize("family, edit, message", [
    ("gan", lambda c: c["pixel"]["wgan-gp"].update(config=[1]), r"its field 'pixel/wgan-gp/config' is list \[1\], not dict"),
    ("vae", lambda c: next(iter(c["feature"].values())).update(seed="0"), r"its field 'feature/[0-9a-f]+/seed' is str '0'"),
    ("deformation-vae", lambda c: c["state_dict"].update({next(iter(c["state_dict"])): [0.0]}), r"its weight '.*' is list"),
    ("deformation-gan", lambda c: c.update(recipe="quick"), r"its field 'recipe' is str 'quick', not dict"),
])
def test_a_generator_file_edited_to_other_field_types_is_one_line_and_left_alone(family, edit, message, tmp_path):
    """A config edited into a list, text for a seed, a weight that is not a tensor: one line naming the field, before
    anything reads it (a raw TypeError or AttributeError deep inside the loader otherwise)."""
    ckpt = torch.load(CHECKPOINT_DIR / f"{family}-quick.pt", weights_only=True)
    edit(ckpt)
    path = tmp_path / "edited.pt"
    torch.save(ckpt, path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=rf"edited\.pt: {message}.*restore it .* or retrain it"):
        LOADERS[family](path)
    assert path.read_bytes() == before


def test_a_file_of_no_known_layout_is_refused(tmp_path):
    import torch

    path = tmp_path / "odd.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="odd.pt holds an unrecognised checkpoint, not a gan one"):
        LOADERS["gan"](path)


KEYS = {"vae": {"pixel", "feature", "fingerprint"}, "gan": {"wgan-gp", "standard", "feature", "fingerprint"},
        "deformation-vae": {"model"}, "deformation-gan": {"model"}, "diffusion": {"model", "schedule"},
        "sinusoid": {"models", "record"}, "protonet": {"model", "result"}}


@pytest.mark.parametrize("name", sorted(KEYS))
def test_one_load_or_train_for_every_kind_of_checkpoint(name):
    """Methods, generator families and the sinusoid regressors all load through ``load_or_train(name)``; a
    committed file is read, never trained into, so the data are never touched (a stand-in would fail if used)."""
    import torch

    from fslcourse import pretrained

    assert set(G.FAMILIES) | {"sinusoid", "protonet"} == set(KEYS)
    backbone = pretrained("protonet", device="cpu").backbone if name == "diffusion" else None
    out = load_or_train(name, data=object(), device="cpu", backbone=backbone, progress=False, save=False)
    assert set(out) == KEYS[name] | {"checkpoint", "trained", "source"}
    assert not out["trained"] and out["source"]["file"] == f"{name}-quick.pt"
    model = out["models"]["maml_k10"] if name == "sinusoid" else out.get("model", out.get("pixel", out.get("wgan-gp")))
    assert isinstance(model, torch.nn.Module) and not model.training


def test_method_only_options_are_refused_in_one_line_before_any_work(tmp_path):
    from fslcourse.training import train

    with pytest.raises(ValueError, match=r"--steps/--state-every and other recipe changes: for methods only; vae "
                                         r"trains its whole named recipe"):
        train("vae", out=tmp_path / "v.pt", steps=5)
    with pytest.raises(ValueError, match=r"--resume: for methods only; sinusoid trains its whole named recipe on "
                                         r"the CPU, in one sitting"):
        train("sinusoid", out=tmp_path / "s.pt", resume=True)
    with pytest.raises(ValueError, match=r"changes: not an option of a method's load_or_train"):
        load_or_train("protonet", changes={"steps": 5})
    with pytest.raises(ValueError, match=r"the diffusion model is conditioned on a backbone's prototypes; pass "
                                         r"backbone="):
        load_or_train("diffusion", data=object(), path=tmp_path / "d.pt")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("family", sorted(G.FAMILIES))
def test_committed_only_refuses_to_train_a_missing_generator(family, tmp_path):
    """What the benchmarks use: a missing checkpoint is one line naming the train command, and nothing is written."""
    with G.committed_only(), pytest.raises(ValueError, match=rf"^missing.pt does not exist, and this run only "
                                                             rf"measures committed generators; train it first with: "
                                                             rf"python -m fslcourse train {family} --recipe quick$"):
        load_or_train(family, data=object(), path=tmp_path / "missing.pt", progress=False,
                      **({"backbone": torch.nn.Flatten()} if family == "diffusion" else {}))
    assert list(tmp_path.iterdir()) == []


def test_committed_only_refuses_a_feature_entry_for_a_new_backbone(tmp_path):
    path = tmp_path / "vae.pt"
    shutil.copy(CHECKPOINT_DIR / "vae-quick.pt", path)
    before = path.read_bytes()
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 3))  # a backbone no entry was trained for
    # training the family again would not add this backbone, so the message does not send the user there
    with G.committed_only(), pytest.raises(ValueError, match=r"^vae.pt has no feature VAE for backbone \w+: "
                                                             r"feature-space generators are trained for the quick "
                                                             r"ProtoNet and fine-tuning backbones only, .* augment "
                                                             r"protonet or finetune with --profile quick, or use a "
                                                             r"pixel-space generator"):
        load_or_train("vae", data=object(), backbone=backbone, path=path, progress=False)
    assert path.read_bytes() == before
    out = load_or_train("vae", data=object(), path=path, progress=False)  # outside, the pixel VAE loads as before
    assert out["trained"] == [] and out["pixel"] is not None


def test_a_method_checkpoint_of_another_seed_is_not_handed_out_as_the_seed_asked_for():
    """load_or_train('protonet', seed=5) used to return the committed seed-0 model without a word."""
    assert load_or_train("protonet", seed=0, data=object(), device="cpu")["trained"] is False  # the seed it holds
    with pytest.raises(ValueError, match=r"^protonet-quick.pt was trained with seed 0, not the seed=5 asked for; "
                                         r"leave seed out to load it, or give path= a new file"):
        load_or_train("protonet", seed=5, data=object(), device="cpu")



def test_the_diffusion_builder_conditions_on_the_backbone_train_diffusion_used(monkeypatch):
    """With profile 'paper' it loaded the paper ProtoNet's backbone (64-d) for a model trained on the quick one's
    (32-d): the fingerprint check failed, and retraining as the message said trained the same mismatch again."""
    import importlib

    store = importlib.import_module("fslcourse.pretrained")  # the module: the package exports a function of that name
    asked, got = [], {}

    class Stub:
        backbone = torch.nn.Flatten()

    monkeypatch.setattr(store, "pretrained", lambda name, profile, device=None: asked.append(
        (name, profile)) or Stub())
    monkeypatch.setattr(G, "_load_diffusion", lambda data, profile, backbone, **kw: got.update(
        profile=profile, backbone=backbone) or {"model": None, "schedule": None, "source": None})
    monkeypatch.setattr(G, "DiffusionGenerator", lambda *a, **kw: "built")
    assert G.get_generator("diffusion")(object(), backbone=torch.nn.Identity(), profile="paper") == "built"
    assert asked == [("protonet", G.BACKBONE_RECIPE)] and G.BACKBONE_RECIPE == "quick"
    assert got["profile"] == "paper" and isinstance(got["backbone"], torch.nn.Flatten)


def test_load_or_train_checks_a_familys_arguments_before_loading_omniglot(monkeypatch):
    """An unknown recipe, a missing or textual backbone, a bad seed or option, and a tuple of splits were
    refused only after Omniglot had loaded (or failed deep in a trainer: 'tuple' object has no attribute 'train')."""
    import fslcourse.data

    def no_loading(*args, **kwargs):
        raise AssertionError("Omniglot was loaded before the arguments were checked")

    monkeypatch.setattr(fslcourse.data, "load_omniglot", no_loading)
    for kwargs, message in [({"name": "vae", "recipe": "Quick"}, r"^vae has no recipe 'Quick'; use one of quick"),
                            ({"name": "diffusion"}, r"^the diffusion model is conditioned on a backbone's prototypes"),
                            ({"name": "gan", "backbone": "protonet"}, r"^backbone='protonet' is not a network"),
                            ({"name": "vae", "seed": -1}, r"^seed=-1 must be a whole number"),
                            ({"name": "gan", "changes": {}}, r"^changes: not an option of load_or_train\('gan'\); its "
                                                             r"own options are state, resume$"),
                            ({"name": "protonet", "recipe": "full", "data": (1, 2, 3), "save": False},
                             r"^data is a tuple; pass the splits as load_omniglot\(\) returns them")]:
        with pytest.raises(ValueError, match=message):
            load_or_train(**{"progress": False, **kwargs})
