"""The conditional diffusion model: closed forms, samplers against the papers' equations, guidance, learning."""
import math
from types import SimpleNamespace

import pytest
import torch

from fslcourse.generative.diffusion import (
    Schedule,
    beta_schedule,
    ddim_step,
    ddim_timesteps,
    diffusion_loss,
    guided_eps,
    predict_x0,
    q_sample,
    sample,
)
from fslcourse.models.unet import UNet, timestep_embedding


def _unet(seed=0, channels=8, cond_dim=6):
    torch.manual_seed(seed)
    net = UNet(channels=channels, cond_dim=cond_dim).eval()
    with torch.no_grad():  # the output layer starts at zero: make the network non-trivial
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


class Oracle(torch.nn.Module):
    """The ideal noise predictor for data that is a single image x0: eps = (x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t)."""

    def __init__(self, x0, alpha_bar):
        super().__init__()
        self.in_channels, self.x0, self.alpha_bar = 1, x0, alpha_bar
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, t, c=None, drop=None):
        ab = self.alpha_bar[t][:, None, None, None]
        return (x - ab.sqrt() * self.x0) / (1 - ab).sqrt()


def test_schedules_match_their_definitions():
    lin = beta_schedule("linear", 1000)
    assert lin[0].item() == pytest.approx(1e-4) and lin[-1].item() == pytest.approx(0.02)
    assert beta_schedule("linear", 200)[-1].item() == pytest.approx(0.1) and beta_schedule("linear", 10).max() < 1
    cos = Schedule("cosine", 50)
    f = lambda t: math.cos((t / 50 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 10, 30, 48):  # alpha_bar_t = f(t+1) / f(0) (index t is the paper's step t+1)
        assert cos.alpha_bar[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-4)
    assert (cos.betas <= 0.999).all() and (cos.alpha_bar.diff() < 0).all()
    with pytest.raises(ValueError, match="schedule='quadratic' is not known"):
        beta_schedule("quadratic", 10)


def test_q_sample_matches_the_closed_form_mean_and_variance():
    sched = Schedule("linear", 100)
    g = torch.Generator().manual_seed(0)
    x0 = (2 * torch.rand(1, 1, 28, 28, generator=g) - 1).expand(4000, -1, -1, -1)
    for t in (0, 37, 99):
        ab = sched.alpha_bar[t]
        x_t = q_sample(x0, torch.full((4000,), t), torch.randn(x0.shape, generator=g), sched.alpha_bar)
        z = (x_t.mean(0) - ab.sqrt() * x0[0]) / ((1 - ab).sqrt() / 4000 ** 0.5)  # standard errors, 784 pixels
        assert z.abs().max() < 5.5 and z.mean().abs() < 0.2, t
        assert x_t.var(0).mean().item() == pytest.approx((1 - ab).item(), rel=0.03, abs=1e-6)
    # and the product of the per-step transitions q(x_t | x_{t-1}) gives the same alpha_bar
    prod = torch.prod(1 - sched.betas[:38].double())
    assert sched.alpha_bar[37].item() == pytest.approx(prod.item(), rel=1e-5)


def test_loss_is_the_noise_prediction_error_with_the_condition_dropped_at_rate_p():
    net, sched = _unet(), Schedule("cosine", 50)
    g = torch.Generator().manual_seed(0)
    x0, c = 2 * torch.rand(5, 1, 28, 28, generator=g) - 1, torch.randn(5, 6, generator=g)
    for p, cond in ((0.0, c), (1.0, None)):
        g = torch.Generator().manual_seed(1)
        t = torch.randint(0, 50, (5,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        want = (noise - net(q_sample(x0, t, noise, sched.alpha_bar), t, cond)).pow(2).mean()
        got = diffusion_loss(net, x0, c, sched, p_uncond=p, generator=torch.Generator().manual_seed(1))
        assert torch.allclose(got, want, atol=1e-6), p


def test_timestep_embedding():
    e = timestep_embedding(torch.tensor([0, 5, 5]), 16)
    assert e.shape == (3, 16) and torch.equal(e[0, :8], torch.ones(8)) and torch.equal(e[0, 8:], torch.zeros(8))
    assert torch.equal(e[1], e[2]) and torch.allclose(e.pow(2)[:, :8] + e.pow(2)[:, 8:], torch.ones(3, 8))


def test_guidance_zero_is_the_unconditional_prediction_and_the_batched_path_is_exact():
    net = _unet()
    g = torch.Generator().manual_seed(1)
    x, t, c = torch.randn(3, 1, 28, 28, generator=g), torch.tensor([0, 50, 199]), torch.randn(3, 6, generator=g)
    with torch.no_grad():
        uncond, cond = net(x, t, None), net(x, t, c)
        dropped = net(x, t, c, torch.ones(3, dtype=torch.bool))
        assert torch.allclose(guided_eps(net, x, t, c, 0.0), uncond) and torch.allclose(dropped, uncond, atol=1e-6)
        assert not torch.allclose(cond, uncond, atol=1e-4)  # the condition matters
        assert torch.allclose(guided_eps(net, x, t, c, 1.0), cond)
        for w in (0.5, 3.0):  # one batched call, conditional and unconditional halves
            assert torch.allclose(guided_eps(net, x, t, c, w), uncond + w * (cond - uncond), atol=1e-5)


def test_ddim_is_deterministic_and_seeded():
    net, sched = _unet(), Schedule("cosine", 40)
    c = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    a = sample(net, c, sched, sampler="ddim", n_steps=8, w=2.0, generator=torch.Generator().manual_seed(3))
    b = sample(net, c, sched, sampler="ddim", n_steps=8, w=2.0, generator=torch.Generator().manual_seed(3))
    other = sample(net, c, sched, sampler="ddim", n_steps=8, w=2.0, generator=torch.Generator().manual_seed(4))
    assert a.shape == (4, 1, 28, 28) and torch.equal(a, b) and not torch.equal(a, other)
    assert 0 <= a.min() and a.max() <= 1
    # DDIM is deterministic given x_T: the generator is only used for x_T
    x_T = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    again = sample(net, c, sched, sampler="ddim", n_steps=8, w=2.0, x_T=x_T, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, again)
    assert ddim_timesteps(40, 8)[0] == 39 and ddim_timesteps(40, 8)[-1] == 0 and len(ddim_timesteps(40, 8)) == 8
    with pytest.raises(ValueError, match="n_steps=41 must be between 1 and T=40"):
        ddim_timesteps(40, 41)


def test_samplers_recover_x0_with_the_ideal_noise_predictor():
    sched = Schedule("cosine", 30)
    x0 = (2 * torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)) - 1) * 0.9
    oracle = Oracle(x0, sched.alpha_bar)
    for sampler, steps in (("ddim", 5), ("ddim", 30), ("ddpm", None)):
        out = sample(oracle, None, sched, n=2, sampler=sampler, n_steps=steps or 30,
                     generator=torch.Generator().manual_seed(0), clip=False)
        assert torch.allclose(out, (x0 + 1) / 2, atol=1e-4), sampler


def test_ddpm_step_is_ho_et_al_equation_11():
    """Without clipping, the sampler's posterior mean equals 1/sqrt(a_t) (x_t - b_t / sqrt(1 - ab_t) eps)."""
    net, sched = _unet(), Schedule("cosine", 6)
    c = torch.randn(2, 6, generator=torch.Generator().manual_seed(0))
    got = sample(net, c, sched, sampler="ddpm", generator=torch.Generator().manual_seed(5), clip=False)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 1, 28, 28, generator=g)
    with torch.no_grad():
        for t in range(5, -1, -1):
            a, ab, b = sched.alphas[t], sched.alpha_bar[t], sched.betas[t]
            eps = net(x, torch.full((2,), t), c)
            mean = (x - b / (1 - ab).sqrt() * eps) / a.sqrt()
            if t > 0:
                var = b * (1 - sched.alpha_bar[t - 1]) / (1 - ab)  # beta_tilde, the posterior variance
                x = mean + var.sqrt() * torch.randn(x.shape, generator=g)
            else:
                x = mean
    assert torch.allclose(got, (x.clamp(-1, 1) + 1) / 2, atol=1e-4)


def test_ddpm_in_float64_is_ho_et_al_algorithm_2_to_round_off_over_the_full_schedule():
    """Over all T = 200 cosine steps (where 1/sqrt(ab_T) amplifies every float32 rounding by ~4000), in
    float64 and with a_t = ab_t / ab_{t-1}, b_t = 1 - a_t (the schedule's own a_t, to float32 rounding),
    the package's sampler is Algorithm 2 written literally, to 1e-9."""
    net, sched = _unet().double(), Schedule("cosine", 200)
    c = torch.randn(2, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = sample(net, c, sched, sampler="ddpm", generator=torch.Generator().manual_seed(5), clip=False)
    assert got.dtype == torch.float64
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 1, 28, 28, generator=g).double()
    one = torch.tensor(1.0, dtype=torch.float64)
    with torch.no_grad():
        for t in range(199, -1, -1):
            ab = sched.alpha_bar[t].double()
            ab_prev = sched.alpha_bar[t - 1].double() if t > 0 else one
            a = ab / ab_prev
            b = 1 - a
            x = (x - b / (1 - ab).sqrt() * net(x, torch.full((2,), t), c)) / a.sqrt()
            if t > 0:
                x = x + (b * (1 - ab_prev) / (1 - ab)).sqrt() * torch.randn(x.shape, generator=g).double()
    assert (got - (x.clamp(-1, 1) + 1) / 2).abs().max() < 1e-9


def test_ddim_step_is_song_et_al_equation_12():
    sched = Schedule("cosine", 100)
    g = torch.Generator().manual_seed(0)
    x_t, eps = torch.randn(3, 1, 28, 28, generator=g), torch.randn(3, 1, 28, 28, generator=g)
    ab_t, ab_prev = sched.alpha_bar[60].item(), sched.alpha_bar[40].item()
    want = math.sqrt(ab_prev) * (x_t - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t) + math.sqrt(1 - ab_prev) * eps
    assert torch.allclose(ddim_step(x_t, eps, ab_t, ab_prev), want, atol=1e-5)
    assert torch.allclose(predict_x0(q_sample(x_t, torch.tensor([60] * 3), eps, sched.alpha_bar), eps, ab_t), x_t,
                          atol=1e-4)
    x0 = predict_x0(x_t, eps, ab_t)
    assert torch.equal(ddim_step(x_t, eps, ab_t, ab_prev, x0=x0), ddim_step(x_t, eps, ab_t, ab_prev))


def test_sample_runs_the_tested_ddim_step(monkeypatch):
    """``sample(sampler="ddim")`` takes exactly its ``n_steps`` steps through :func:`ddim_step`, and nothing else."""
    from fslcourse.generative import diffusion

    calls = []
    real = diffusion.ddim_step

    def spy(*args, **kwargs):
        calls.append(args[2:4])
        return real(*args, **kwargs)

    sched = Schedule("cosine", 50)
    net = UNet(channels=8, cond_dim=4)
    c, g = torch.zeros(2, 4), torch.Generator().manual_seed(0)
    before = diffusion.sample(net, c, sched, sampler="ddim", n_steps=5, generator=g)
    monkeypatch.setattr(diffusion, "ddim_step", lambda *a, **k: torch.zeros_like(a[0]))  # a broken step...
    broken = diffusion.sample(net, c, sched, sampler="ddim", n_steps=5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(broken, torch.full_like(broken, 0.5))  # ...is what sample() returns
    monkeypatch.setattr(diffusion, "ddim_step", spy)
    again = diffusion.sample(net, c, sched, sampler="ddim", n_steps=5, generator=torch.Generator().manual_seed(0))
    ab = sched.alpha_bar.tolist()
    steps = ddim_timesteps(50, 5)
    assert calls == [(ab[t], ab[steps[i + 1]] if i + 1 < 5 else 1.0) for i, t in enumerate(steps)]
    assert torch.equal(before, again)


def test_a_short_training_run_beats_predicting_zero_noise(glyphs):
    from fslcourse.generative.diffusion import RECIPES, heldout_loss
    from fslcourse.methods.protonet import ProtoNet
    from fslcourse.training.generators import train_diffusion

    torch.set_num_threads(1)
    torch.manual_seed(0)
    backbone = ProtoNet(backbone_kwargs={"hidden": 8}).backbone.eval()
    sched = Schedule("cosine", 50)
    net = UNet(channels=8, cond_dim=8)
    before = heldout_loss(net, backbone, glyphs[2], sched, n_classes=8)
    recipe = RECIPES["quick"].replace(steps=60, n_way=8, n_query=2, lr=5e-3, options={"ema": 0.8})
    model, hist = train_diffusion(net, backbone, glyphs[0], sched, recipe, progress=False)
    after = heldout_loss(model, backbone, glyphs[2], sched, n_classes=8)  # meta-test glyphs, never trained on
    assert before["loss"] == pytest.approx(before["zero_noise"], rel=1e-6)  # the output layer starts at zero
    assert after["loss"] < 0.7 * after["zero_noise"], (before, after)
    assert hist["split"] == "train" and len(hist["loss"]) == 60 and max(hist["seen_classes"]) < glyphs[0].n_classes


class Tripwire:
    name = "test"

    def __getattr__(self, attr):
        raise AssertionError(f"the diffusion model's training touched the meta-test split (.{attr})")


def test_load_or_train_trains_on_meta_train_once_and_checks_the_backbone(glyphs, tmp_path):
    from fslcourse.generative.diffusion import DiffusionGenerator
    from fslcourse.methods.protonet import ProtoNet
    from fslcourse.training import load_or_train

    torch.manual_seed(0)
    backbone = ProtoNet(backbone_kwargs={"hidden": 8}).backbone
    data = SimpleNamespace(train=glyphs[0], val=glyphs[1], test=Tripwire())
    tiny = {"steps": 3, "n_way": 4, "val_every": 2, "options": {"T": 20}, "model": {"channels": 8}}
    out = load_or_train("diffusion", data=data, backbone=backbone, path=tmp_path / "d.pt", progress=False, changes=tiny)
    ckpt = out["checkpoint"]
    assert out["trained"] and ckpt["history"]["split"] == "train" and ckpt["seed"] == 0 and ckpt["T"] == 20
    assert {"loss", "zero_noise"} <= set(ckpt["metrics"]) and ckpt["train_seconds"] > 0
    again = load_or_train("diffusion", data=data, backbone=backbone, path=tmp_path / "d.pt", progress=False)
    assert not again["trained"] and torch.equal(again["model"].inp.weight, out["model"].inp.weight)
    assert again["source"]["file"] == "d.pt" and again["source"] == out["source"]
    with pytest.raises(ValueError, match="trained with conditioning backbone"):
        load_or_train("diffusion", data=data, backbone=ProtoNet(backbone_kwargs={"hidden": 8}).backbone,
                      path=tmp_path / "d.pt")
    gen = DiffusionGenerator(out["model"], out["schedule"], backbone.eval(), n_steps=4)
    support = glyphs[2].get(torch.tensor([0, 1, 2]), torch.tensor([[0, 1]] * 3)).flatten(0, 1)  # (6, 1, 28, 28)
    x, y = gen.generate(support, torch.tensor([0, 0, 1, 1, 2, 2]), 2, 0)
    assert x.shape == (6, 1, 28, 28) and y.tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="n_per_class=0: ask for at least one"):
        gen.generate(support, torch.tensor([0, 0, 1, 1, 2, 2]), 0, 0)
    with pytest.raises(ValueError, match="holds a diffusion checkpoint, not a gan one"):
        load_or_train("gan", data=data, path=tmp_path / "d.pt", progress=False)


def test_exercises_pass_the_reference_and_catch_mistakes():
    from fslcourse.exercises import check

    assert check("diffusion_q_sample", q_sample, verbose=False)
    wrong = lambda x0, t, noise, ab: ab[t][:, None, None, None] * x0 + (1 - ab[t][:, None, None, None]) * noise  # noqa
    assert not check("diffusion_q_sample", wrong, verbose=False)  # variances instead of standard deviations
    assert check("ddim_step", ddim_step, verbose=False)
    assert not check("ddim_step", lambda x, e, a, p: p ** 0.5 * predict_x0(x, e, a), verbose=False)


def test_committed_checkpoint_reproduces_its_metric_and_saw_only_meta_train(omniglot):
    import fslcourse
    from fslcourse.generative.diffusion import heldout_loss
    from fslcourse.training import load_or_train
    from fslcourse.training.generators import checkpoint_file

    path = checkpoint_file("diffusion", "quick")
    if not path.exists():
        pytest.fail(f"{path} is missing; train it with python -m fslcourse train diffusion --recipe quick")
    torch.set_num_threads(1)
    backbone = fslcourse.pretrained("protonet", device="cpu").backbone
    out = load_or_train("diffusion", data=omniglot, backbone=backbone, device="cpu", progress=False, path=path,
                        save=False)
    ckpt = out["checkpoint"]
    hist = ckpt["history"]
    assert not out["trained"] and ckpt["seed"] == 0 and ckpt["train_seconds"] > 0 and "config" in ckpt
    assert hist["split"] == "train" and max(hist["seen_classes"]) < omniglot.train.n_classes
    got = heldout_loss(out["model"], backbone, omniglot.val, out["schedule"], seed=ckpt["seed"])
    assert got["loss"] == pytest.approx(ckpt["metrics"]["loss"], rel=1e-3)
    assert got["loss"] < 0.5 * got["zero_noise"]  # far better than predicting zero noise


class ClassOracle(Oracle):
    """The ideal noise predictor when class ``c`` is one flat image of grey ``c[:, 0]``: its samples show their class."""

    def forward(self, x, t, c=None, drop=None):
        self.x0 = (2 * c[:, :1] - 1)[:, :, None, None].expand_as(x)  # (n, 1, 28, 28): grey level c0 in [-1, 1]
        return super().forward(x, t, c, drop)


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_each_generated_drawing_is_conditioned_on_its_own_class(guidance):
    """Conditions must follow the class-major labels: c[labels], not c.repeat(m, 1) (sample i on class i mod n_way)."""
    from fslcourse.generative.diffusion import DiffusionGenerator

    schedule = Schedule("linear", 50)
    greys = torch.tensor([0.1, 0.5, 0.9])
    support_y = torch.tensor([0, 0, 1, 1, 2, 2])
    support_x = greys[support_y][:, None, None, None].expand(6, 1, 28, 28)  # class k: flat images of grey k
    gen = DiffusionGenerator(ClassOracle(None, schedule.alpha_bar), schedule, torch.nn.Flatten(), n_steps=5,
                             guidance=guidance)
    x, y = gen.generate(support_x, support_y, 4, seed=0)
    assert y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert torch.allclose(x, greys[y][:, None, None, None].expand_as(x), atol=1e-5)


def test_sampling_with_neither_conditions_nor_a_count_is_one_line():
    schedule = Schedule("linear", 20)
    with pytest.raises(ValueError, match=r"^c=None and n=None: pass conditions c \(n, D\), or n for n "
                                         r"unconditional samples$"):
        sample(Oracle(torch.zeros(1, 1, 28, 28), schedule.alpha_bar), None, schedule)


@pytest.mark.parametrize("channels", [12, 4, 0, 16.0])
def test_a_unet_width_the_group_norms_cannot_split_is_one_line(channels):
    """UNet(channels=12) raised torch's 'num_channels (12) must be divisible by num_groups (8)', naming neither."""
    with pytest.raises(ValueError, match=rf"^channels={channels!r}: the U-Net's group norms split channels into 8 "
                                         r"groups; use a multiple of 8"):
        UNet(channels=channels)


def test_a_numpy_width_is_a_width():
    import numpy as np

    assert UNet(channels=np.int64(16)).config()["channels"] == 16 and type(UNet(channels=np.int64(16)).channels) is int
