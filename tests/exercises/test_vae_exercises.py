"""Exercises of notebook 07: the references pass, the mistakes students make fail with a hint."""
import torch

from fslcourse.exercises import check
from fslcourse.methods.base import prototypes


def test_kl_exercise():
    assert check("vae_kl", lambda mu, lv: 0.5 * (mu.pow(2) + lv.exp() - 1 - lv).sum(1))
    assert not check("vae_kl", lambda mu, lv: 0.5 * (mu.pow(2) + lv.exp() - 1 - lv).mean(1))  # mean over z
    assert not check("vae_kl", lambda mu, lv: 0.5 * (mu.pow(2) + lv.exp() - lv).sum(1))  # forgot the -1


def mine(z_r, y_r, z_g, y_g, n_way, w):
    protos = []
    for c in range(n_way):
        r, g = z_r[y_r == c], z_g[y_g == c]
        protos.append((r.sum(0) + w * g.sum(0)) / (len(r) + w * len(g)))
    return torch.stack(protos)


def test_weighted_prototypes_exercise(capsys):
    assert check("weighted_prototypes", mine)
    # the usual mistakes: the plain count in the denominator; the weight applied to the mean of the generated
    # examples; the plain mean of everything (lambda ignored)
    plain_count = lambda z_r, y_r, z_g, y_g, n, w: torch.stack([  # noqa: E731
        (z_r[y_r == c].sum(0) + w * z_g[y_g == c].sum(0)) / ((y_r == c).sum() + (y_g == c).sum()) for c in range(n)])
    assert not check("weighted_prototypes", plain_count)
    mixed_means = lambda z_r, y_r, z_g, y_g, n, w: torch.stack([  # noqa: E731
        (z_r[y_r == c].mean(0) + w * z_g[y_g == c].mean(0)) / (1 + w) for c in range(n)])
    assert not check("weighted_prototypes", mixed_means)  # also NaN for a class whose samples were all rejected
    assert not check("weighted_prototypes", lambda z_r, y_r, z_g, y_g, n, w: prototypes(
        torch.cat([z_r, z_g]), torch.cat([y_r, y_g]), n))
    assert "values differ" in capsys.readouterr().out


def test_displace_exercise(capsys):
    import torch.nn.functional as F

    def mine(source, field):
        n, _, h, w = source.shape
        ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h * 2 - 1, (torch.arange(w) + 0.5) / w * 2 - 1, indexing="ij")
        grid = torch.stack([xs, ys], -1).expand(n, h, w, 2)  # (n, H, W, 2): x first, as grid_sample reads it
        return F.grid_sample(source, grid + field.permute(0, 2, 3, 1), align_corners=False)

    def no_identity(source, field):  # the usual slip: the field taken as the positions themselves
        return F.grid_sample(source, field.permute(0, 2, 3, 1), align_corners=False)

    def reshaped(source, field):  # (n, 2, H, W) -> (n, H, W, 2) by view instead of a permute scrambles the field
        n, _, h, w = source.shape
        identity = F.affine_grid(torch.eye(2, 3).expand(n, 2, 3), list(source.shape), align_corners=False)
        return F.grid_sample(source, identity + field.reshape(n, h, w, 2), align_corners=False)

    assert check("displace", mine)
    assert not check("displace", no_identity)
    assert "a zero field does not give back the drawing" in capsys.readouterr().out
    assert not check("displace", reshaped)
    assert not check("displace", lambda s, f: mine(s, f.flip(1)))  # x and y swapped
