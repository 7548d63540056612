"""The SS convolution against plain convolutions: identity at initialisation, closed forms, gradients."""
import copy

import torch
from torch import nn

from fslcourse.models import ResNetSmall
from fslcourse.models.scale_shift import ScaleShiftConv2d, add_scale_shift, scale_shift_layers, ss_conv2d


def test_initial_ss_conv_equals_the_plain_conv():
    g = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=True)
    x = torch.randn(4, 3, 9, 9, generator=g)
    want = conv(x)
    got = ScaleShiftConv2d(conv)(x)
    assert torch.equal(got, want)


def test_initial_ss_backbone_equals_the_plain_backbone():
    torch.manual_seed(0)
    plain = ResNetSmall(widths=(4, 6, 8)).eval()
    ss = add_scale_shift(copy.deepcopy(plain)).eval()
    assert len(scale_shift_layers(ss)) == 2 * 3 + 3  # two convs per block plus three 1x1 shortcuts
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.equal(ss(x), plain(x))
    with torch.no_grad():  # and it is not trivially equal: changing Φ changes the output
        next(iter(scale_shift_layers(ss).values())).shift += 0.1
    assert not torch.allclose(ss(x), plain(x))


def test_scale_and_shift_match_the_closed_form():
    """Scaling filter i by a_i and shifting it by c_i gives a_i (W_i * x) + b_i + c_i."""
    g = torch.Generator().manual_seed(2)
    w, b = torch.randn(6, 2, 3, 3, generator=g), torch.randn(6, generator=g)
    x = torch.randn(2, 2, 7, 7, generator=g)
    a, c = torch.rand(6, generator=g) + 0.5, torch.randn(6, generator=g)
    plain_no_bias = torch.nn.functional.conv2d(x, w, None, padding=1)  # (2, 6, 7, 7)
    want = a.view(1, -1, 1, 1) * plain_no_bias + (b + c).view(1, -1, 1, 1)
    assert torch.allclose(ss_conv2d(x, w, b, a, c, padding=1), want, atol=1e-5)


def test_only_scale_and_shift_are_trainable_and_gradients_match_finite_differences():
    torch.manual_seed(3)
    net = add_scale_shift(nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Conv2d(3, 2, 3))).double()
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trainable == ["0.scale", "0.shift", "2.scale", "2.shift"]
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    loss = lambda: net(x).pow(2).sum()  # noqa: E731
    loss().backward()
    for p in (net[0].scale, net[2].shift):
        for i in range(len(p)):
            eps = 1e-6
            with torch.no_grad():
                p[i] += eps
                up = loss()
                p[i] -= 2 * eps
                down = loss()
                p[i] += eps
            assert abs((up - down).item() / (2 * eps) - p.grad[i].item()) < 1e-5 * max(1.0, abs(p.grad[i].item()))
    assert net[0].conv.weight.grad is None and net[2].conv.weight.grad is None


def test_wrong_sizes_name_the_fix():
    import pytest
    with pytest.raises(ValueError, match="one number per filter"):
        ss_conv2d(torch.zeros(1, 1, 4, 4), torch.zeros(3, 1, 3, 3), None, torch.ones(2), torch.zeros(3))
