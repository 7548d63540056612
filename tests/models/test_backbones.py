"""Backbones: shapes, parameter counts in closed form, and Conv-4 against a functional re-implementation."""
import pytest
import torch
import torch.nn.functional as F

from fslcourse.models import Conv4, ResNetSmall, make_backbone


@pytest.mark.parametrize("hidden", [8, 64])
def test_conv4_shape_and_parameter_count(hidden):
    net = Conv4(hidden=hidden)
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, hidden) and net.out_dim == hidden
    # per block: conv weights + bias, BN weight + bias
    want = sum(c_in * hidden * 9 + hidden + 2 * hidden for c_in in (1, hidden, hidden, hidden))
    assert sum(p.numel() for p in net.parameters()) == want


def test_conv4_equals_functional_reference():
    torch.manual_seed(0)
    net = Conv4(hidden=16).eval()
    for m in net.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.rand(4, 1, 28, 28)
    h = x
    for block in net.blocks:
        conv, bn = block[0], block[1]
        h = F.conv2d(h, conv.weight, conv.bias, padding=1)
        h = (h - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
        h = h * bn.weight[:, None, None] + bn.bias[:, None, None]
        h = F.max_pool2d(h.clamp_min(0), 2)
    assert h.shape == (4, 16, 1, 1)
    assert torch.allclose(net(x), h.flatten(1), atol=1e-5)


def test_resnet_shape_gradients_and_errors():
    net = ResNetSmall(widths=(8, 16, 24))
    x = torch.rand(5, 1, 28, 28, requires_grad=True)
    z = net(x)
    assert z.shape == (5, 24) and net.out_dim == 24
    z.sum().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(ValueError, match=r"must be \(n, C, H, W\)"):
        net(torch.rand(1, 28, 28))
    with pytest.raises(ValueError, match="widths=.*positive"):
        ResNetSmall(widths=())


def test_make_backbone_round_trip():
    net = make_backbone("resnet", widths=[4, 8])
    assert isinstance(net, ResNetSmall) and make_backbone("resnet", **net.config()).out_dim == 8
    assert isinstance(make_backbone("conv4", **Conv4(hidden=5).config()), Conv4)
    with pytest.raises(ValueError, match="backbone='vgg' is not known"):
        make_backbone("vgg")


def test_modes_kept_restores_each_submodule_not_the_parent_mode():
    from fslcourse.models import modes_kept

    outer = torch.nn.Sequential(Conv4(hidden=4), torch.nn.Linear(4, 2))
    outer.train()
    outer[0].eval()
    with modes_kept(outer):
        outer.eval()
        assert not any(m.training for m in outer.modules())
    assert outer.training and outer[1].training
    assert not any(m.training for m in outer[0].modules())
    outer.train(outer.training)  # what the old code did: the eval-mode backbone comes back in train mode
    assert outer[0].training
