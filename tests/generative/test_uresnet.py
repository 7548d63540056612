"""The DAGAN paper's networks: dense levels against their definition, the U-Net's use of the source and of z,
a critic that scores each pair on its own (what the gradient penalty assumes), the paper's rotations, and a
short training run through the course's DAGAN trainer."""
from types import SimpleNamespace

import pytest
import torch

import fslcourse.training.generators as G
from fslcourse.generative.gan import DAGAN, RECIPES, rotate_pairs
from fslcourse.generative.gan import RECIPES as GAN
from fslcourse.generative.uresnet import DenseCritic, DenseLevel, UResNetGenerator
from fslcourse.training import load_or_train, train
from fslcourse.training.generators import make_dagan, train_gan
from fslcourse.training.loop import TrainingStopped

SMALL = {"widths": (4, 4, 8, 8), "inner": 2}


def _gen(**kw):
    torch.manual_seed(0)
    return UResNetGenerator(**{**SMALL, "z_dim": 6, "dropout": 0.0, **kw})


def test_dense_level_concatenates_every_earlier_output():
    torch.manual_seed(0)
    level = DenseLevel(3, 5, 3, "layer")
    x = torch.randn(2, 3, 7, 7)
    maps = [x]
    for u in level.units:  # by hand: each unit sees the input and all earlier outputs
        maps.append(u(torch.cat(maps, 1)))
    out = level(x)
    assert out.shape == (2, level.out_channels, 7, 7) and level.out_channels == 3 + 3 * 5
    assert torch.equal(out, torch.cat(maps, 1))
    assert [u[0].in_channels for u in level.units] == [3, 8, 13]


def test_generator_shapes_range_and_config_round_trip():
    g = _gen().eval()
    source, z = torch.rand(5, 1, 28, 28), torch.randn(5, 6)
    out = g(source, z)
    assert out.shape == (5, 1, 28, 28) and out.min() >= 0 and out.max() <= 1
    h = UResNetGenerator(**g.config()).eval()
    h.load_state_dict(g.state_dict())
    assert torch.equal(h(source, z), out)


def test_generator_output_depends_on_its_own_source_and_noise_only():
    g = _gen().eval()  # eval: batch norm uses running statistics, so examples do not mix
    source = torch.rand(4, 1, 28, 28, requires_grad=True)
    z = torch.randn(4, 6, requires_grad=True)
    g(source, z)[1].sum().backward()
    assert source.grad[1].abs().sum() > 0 and z.grad[1].abs().sum() > 0
    assert source.grad[[0, 2, 3]].abs().sum() == 0 and z.grad[[0, 2, 3]].abs().sum() == 0


def test_the_source_reaches_the_output_through_the_last_skip():
    # every pixel of the source is concatenated at 28 x 28 just before the head: a pixel's gradient on the
    # output's same pixel is nonzero even with the encoder cut off
    g = _gen().eval()
    source = torch.rand(1, 1, 28, 28, requires_grad=True)
    with torch.no_grad():
        for p in g.stem.parameters():
            p.zero_()
    g(source, torch.randn(1, 6))[0, 0, 14, 3].backward()
    assert source.grad[0, 0, 14, 3] != 0


def test_critic_scores_each_pair_on_its_own():
    torch.manual_seed(0)
    d = DenseCritic(**SMALL, dense_units=16)
    pairs = torch.rand(6, 2, 28, 28)
    together = d(pairs)
    alone = torch.cat([d(pairs[i:i + 1]) for i in range(6)])
    assert together.shape == (6,)
    torch.testing.assert_close(together, alone)


def test_rotate_pairs_turns_both_drawings_alike():
    g = torch.Generator().manual_seed(0)
    source, x = torch.rand(200, 1, 28, 28), torch.rand(200, 1, 28, 28)
    s2, x2 = rotate_pairs(source, x, g)
    turns = []
    for i in range(200):
        k = [q for q in range(4) if torch.equal(torch.rot90(source[i], q, (1, 2)), s2[i])]
        assert len(k) == 1 and torch.equal(torch.rot90(x[i], k[0], (1, 2)), x2[i])
        turns.append(k[0])
    counts = torch.bincount(torch.tensor(turns), minlength=4)
    assert 100 < counts[0] < 150 and all(10 < c < 45 for c in counts[1:]), counts  # 1/2 + 1/8 unturned, 1/8 each
    again = rotate_pairs(source, x, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], s2) and torch.equal(again[1], x2)


@pytest.mark.parametrize("rotate", [False, True])
def test_the_paper_networks_train_through_the_dagan_trainer(glyphs, rotate):
    torch.manual_seed(0)
    gan = DAGAN(_gen(), DenseCritic(**SMALL, dense_units=16))
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    r = RECIPES["quick"].replace(steps=2, n_way=4, val_every=0, options={"n_critic": 2, "rotate": rotate})
    hist = train_gan(gan, glyphs[0], r, progress=False)
    assert hist["steps"] == 2
    changed = [k for k, v in gan.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("generator.") for k in changed) and any(k.startswith("critic.") for k in changed)


def _paper(steps, **changes):
    """The paper recipe with its networks and options, on four glyph characters a batch and one critic step."""
    return GAN["paper"].replace(steps=steps, n_way=4, val_every=0, state_every=1, options={"n_critic": 1}, **changes)


@pytest.fixture
def glyph_data(glyphs):
    return SimpleNamespace(train=glyphs[0], val=glyphs[1], test=glyphs[2])


def test_the_paper_recipe_is_the_papers_run():
    r = GAN["paper"]
    assert r.steps == 200 * (900 * 20 // 32) and r.n_way == 32 and r.lr == 1e-4
    assert r.optimizer_kwargs["betas"] == (0.0, 0.9) and r.options["n_critic"] == 5 and r.options["rotate"]
    assert r.options["losses"] == ("wgan-gp",) and not r.options["mismatch"]
    gan = make_dagan(r)
    assert isinstance(gan.generator, UResNetGenerator) and isinstance(gan.critic, DenseCritic)
    assert gan.generator.config() == {"widths": [64, 64, 128, 128], "inner": 3, "z_dim": 100, "dropout": 0.5}
    assert gan.critic.config() == {"widths": [64, 64, 128, 128], "inner": 5, "dense_units": 1024}


def test_an_unknown_network_name_is_one_clear_error():
    with pytest.raises(ValueError, match="critic='densenet' is not a DAGAN critic; use one of pair, dense"):
        make_dagan(GAN["paper"].replace(options={"critic": "densenet"}))


def test_paper_recipe_runs_two_steps_and_loads_back(glyph_data, tmp_path, monkeypatch):
    monkeypatch.setitem(G.GAN, "paper", _paper(2))
    path = tmp_path / "gan-paper.pt"
    out = load_or_train("gan", "paper", data=glyph_data, device="cpu", progress=False, path=path)
    assert out["trained"] == ["wgan-gp"] and "standard" not in out  # the paper trains WGAN-GP only
    assert isinstance(out["wgan-gp"], UResNetGenerator) and out["checkpoint"]["pixel"]["wgan-gp"]["history"]["steps"] == 2
    again = load_or_train("gan", "paper", data=glyph_data, device="cpu", progress=False, path=path)
    assert again["trained"] == []
    src = torch.rand(3, 1, 28, 28)
    z = torch.randn(3, 100)
    assert torch.equal(out["wgan-gp"](src, z), again["wgan-gp"](src, z))


def test_an_interrupted_paper_run_resumes_to_the_same_weights(glyph_data, tmp_path, monkeypatch, ctrl_c_after_step):
    monkeypatch.setitem(G.GAN, "paper", _paper(4))
    whole = load_or_train("gan", "paper", data=glyph_data, device="cpu", progress=False, path=tmp_path / "a.pt")
    state = tmp_path / "b.state.pt"
    with ctrl_c_after_step(DAGAN, 3), pytest.raises(TrainingStopped, match="continue with --resume"):
        load_or_train("gan", "paper", data=glyph_data, device="cpu", progress=False, path=tmp_path / "b.pt",
                      state=state)
    assert (tmp_path / "b-wgan-gp.state.pt").exists() and not (tmp_path / "b.pt").exists()
    saved_at = torch.load(tmp_path / "b-wgan-gp.state.pt", weights_only=True)["step"]
    resumed = load_or_train("gan", "paper", data=glyph_data, device="cpu", progress=False, path=tmp_path / "b.pt",
                            state=state, resume=True)
    sittings = resumed["checkpoint"]["pixel"]["wgan-gp"]["history"]["sittings"]
    assert saved_at == 3 and [s["from_step"] for s in sittings] == [0, 3]  # resumed from the state, not restarted
    for (k, a), b in zip(whole["wgan-gp"].state_dict().items(), resumed["wgan-gp"].state_dict().values()):
        assert torch.equal(a, b), k


def test_resume_is_refused_for_a_family_that_trains_in_one_sitting(tmp_path):
    with pytest.raises(ValueError, match="--resume is for the gan family; vae trains"):
        train("vae", "quick", out=tmp_path / "v.pt", resume=True)
    with pytest.raises(ValueError, match="nothing to resume: no training state beside"):
        train("gan", "paper", out=tmp_path / "g.pt", resume=True)


def test_a_fresh_gan_run_never_replaces_an_unfinished_runs_state(tmp_path):
    (tmp_path / "g-wgan-gp.state.pt").write_bytes(b"hours of work")
    with pytest.raises(ValueError, match="g-wgan-gp.state.pt holds an unfinished run; continue it with --resume"):
        train("gan", "paper", out=tmp_path / "g.pt")
    assert (tmp_path / "g-wgan-gp.state.pt").read_bytes() == b"hours of work"
