"""The diffusion explorer: every control changes what is shown, and what is shown is the DDIM trajectory."""
import numpy as np
import pytest
import torch

from fslcourse.generative.diffusion import Schedule, class_conditions, sample
from fslcourse.methods.protonet import ProtoNet
from fslcourse.models.unet import UNet
from fslcourse.widgets.diffusion_explorer import DiffusionExplorer, _strip


def _explorer(glyphs):
    torch.manual_seed(0)
    net = UNet(channels=8, cond_dim=8).eval()
    with torch.no_grad():  # a random but non-degenerate network (its output layer starts at zero)
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    backbone = ProtoNet(backbone_kwargs={"hidden": 8}).backbone.eval()
    sched = Schedule("cosine", 20)
    return net, sched, backbone, DiffusionExplorer(net, sched, backbone, glyphs[2], n_classes=3, n_shot=2, n_samples=3)


def test_the_ends_of_the_slider_are_the_noise_and_the_sample(glyphs):
    net, sched, backbone, ex = _explorer(glyphs)
    s = ex.shown
    assert s["t"] == 20 and s["step"] == 0 and torch.allclose(s["x_t"], (ex.x_T.clamp(-1, 1) + 1) / 2)
    assert s["support"].shape == (2, 1, 28, 28) and len(ex.fig.axes) == 3  # a strip per row: x_t, x0_hat, support
    assert np.allclose(ex.fig.axes[0].images[0].get_array(), _strip(s["x_t"], 3))
    real = glyphs[2].get(ex.classes[:1], ex.order[:2][None])[0]
    assert torch.equal(s["support"], real)
    ex.t.value = 0
    c = class_conditions(backbone, real, torch.zeros(2, dtype=torch.long), 1).expand(3, -1)
    want = sample(net, c, sched, sampler="ddim", n_steps=ex.n_steps.value, w=2.0, x_T=ex.x_T)
    assert ex.shown["t"] == 0 and torch.allclose(ex.shown["x0_hat"], want, atol=1e-5)
    assert np.allclose(ex.fig.axes[1].images[0].get_array(), _strip(ex.shown["x0_hat"], 3))  # what the picture shows
    assert "t = 0" in ex.fig._suptitle.get_text()


def test_controls_change_what_is_shown(glyphs):
    net, sched, backbone, ex = _explorer(glyphs)
    ex.t.value = 10
    mid = ex.shown
    assert 0 < mid["t"] < 20 and not torch.allclose(mid["x_t"], (ex.x_T.clamp(-1, 1) + 1) / 2)
    ex.guidance.value = 4.0
    assert ex.shown["guidance"] == 4.0 and not torch.allclose(ex.shown["x0_hat"], mid["x0_hat"])
    ex.n_steps.value = 5
    assert ex.shown["n_steps"] == 5 and ex.shown["t"] in {t + 1 for t in (19, 14, 10, 5, 0)}
    before = ex.shown["x0_hat"].clone()
    ex.character.value = 2
    assert ex.shown["class_id"] == int(ex.classes[2]) and not torch.allclose(ex.shown["x0_hat"], before)
    ex.n_shot.value = 4
    assert ex.shown["support"].shape[0] == 4 and len(ex.fig.axes) == 3
    assert np.allclose(ex.fig.axes[2].images[0].get_array(), _strip(ex.shown["support"], 4, frame=True))


def test_without_guidance_the_support_set_is_ignored(glyphs):
    """w = 0 is the unconditional model: another character gives the same trajectory."""
    _, _, _, ex = _explorer(glyphs)
    ex.guidance.value = 0.0
    ex.t.value = 0
    a, support = ex.shown["x0_hat"].clone(), ex.shown["support"].clone()
    ex.character.value = 1
    assert ex.shown["class_id"] == int(ex.classes[1]) and not torch.equal(ex.shown["support"], support)
    assert torch.equal(ex.shown["x0_hat"], a)  # another support set, the same drawing
    ex.guidance.value = 2.0  # control: with guidance the character matters
    b = ex.shown["x0_hat"].clone()
    ex.character.value = 0
    assert not torch.equal(ex.shown["x0_hat"], b)


def test_a_run_is_computed_only_as_far_as_the_slider_and_continued_in_place(glyphs):
    """A new character at t = T costs one step; moving towards 0 continues that run, equal to sample()'s path."""
    net, sched, backbone, ex = _explorer(glyphs)
    ex.character.value = 1
    assert ex.shown["t"] == 20 and len(ex.run()["path"]) == 1  # x_T and the first x0_hat only
    ex.t.value = 10
    some = len(ex.run()["path"])
    assert 1 < some < len(ex.run()["times"])
    ex.t.value = 0
    support, path = ex.trajectory()
    c = class_conditions(backbone, support, torch.zeros(2, dtype=torch.long), 1).expand(3, -1)
    _, want = sample(net, c, sched, sampler="ddim", n_steps=ex.n_steps.value, w=2.0, x_T=ex.x_T, trajectory=True)
    assert [t for t, _, _ in path] == [t for t, _, _ in want]
    assert all(torch.equal(a, b) and torch.equal(u, v) for (_, a, u), (_, b, v) in zip(path, want))


def test_a_seed_out_of_torchs_range_is_a_one_line_error(glyphs):
    """seed=2**64 was torch's 'Overflow when unpacking long long'."""
    net, sched, backbone, _ = _explorer(glyphs)
    with pytest.raises(ValueError, match=r"^seed=18446744073709551616 must be a whole number from 0 to 2\*\*64 - 1"):
        DiffusionExplorer(net, sched, backbone, glyphs[2], n_classes=3, seed=2**64)
