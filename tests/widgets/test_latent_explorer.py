"""The latent-space explorer: controls change what is shown; projections against references."""
import torch

from fslcourse.methods import ProtoNet
from fslcourse.widgets.latent_explorer import LatentExplorer, pca_2d, tsne_2d


def _models():
    torch.manual_seed(0)
    untrained = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    trained = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return untrained, trained


def test_pca_matches_svd_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 6, generator=g) * torch.tensor([5.0, 2.0, 0.5, 0.1, 0.1, 0.1])
    xy = pca_2d(x)
    centred = x - x.mean(0)
    cov = centred.T.double() @ centred.double() / 29
    evals = torch.linalg.eigvalsh(cov).flip(0)
    # variance along each projected axis equals the top-2 eigenvalues of the covariance
    assert torch.allclose(xy.double().var(0), evals[:2], rtol=1e-4)
    # and the projection preserves the inner products of the top-2 subspace (sign-free check)
    assert torch.allclose(xy @ xy.T, (pca_2d(-x) @ pca_2d(-x).T), atol=1e-3)


def test_tsne_separates_far_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0] * 5, [20.0] * 5, [-20.0, 20.0, 0, 0, 0]])
    x = torch.cat([c + torch.randn(10, 5, generator=g) for c in centres])
    y = tsne_2d(x, perplexity=5, seed=0)
    labels = torch.arange(3).repeat_interleave(10)
    nearest = torch.cdist(y, y).fill_diagonal_(float("inf")).argmin(1)
    assert y.shape == (30, 2) and (labels[nearest] == labels).float().mean() > 0.95


def test_controls_change_the_view(glyphs):
    untrained, trained = _models()
    ex = LatentExplorer(glyphs[2], trained, untrained, n_way=4, n_shot=2, n_query=3, seed=0)
    s = ex.shown
    assert s["prototype_xy"].shape == (4, 2) and s["support_xy"].shape == (8, 2) and s["query_xy"].shape == (12, 2)
    first_classes = s["episode"].classes.clone()
    # misclassified queries are exactly the ones the model's own logits get wrong
    ep = s["episode"]
    with torch.no_grad():
        pred = trained.predict(ep.support_x, ep.support_y, ep.query_x).argmax(1)
    assert torch.equal(s["wrong"], pred != ep.query_y)
    assert f"{int(s['wrong'].sum())} of 12 queries" in ex.status.value
    # the picture's rule, named: MTL adapts a head per episode, so its own accuracy can differ from this one
    assert "nearest-prototype accuracy" in ex.fig.axes[0].get_title() and "by the nearest prototype" in ex.status.value
    # the static picture has no status line: its marker key is under the axes
    assert [t.get_text() for t in ex.fig.axes[0].get_legend().get_texts()] == [
        "support", "query (true class)", "prototype", "misclassified query"]
    ex.seed.value = 5
    assert not torch.equal(ex.shown["episode"].classes, first_classes)
    ex.n_way.value = 6
    assert ex.shown["prototype_xy"].shape == (6, 2) and "6-way 2-shot" in ex.fig.axes[0].get_title()
    trained_xy = ex.shown["query_xy"].clone()
    ex.backbone.value = "untrained"
    assert ex.shown["backbone"] == "untrained" and not torch.allclose(ex.shown["query_xy"], trained_xy)
    assert ex.fig.axes[0].get_title().startswith("untrained backbone, PCA")
    ex.projection.value = "tsne"
    assert ex.shown["projection"] == "tsne" and ex.shown["query_xy"].shape == (18, 2)


def test_impossible_settings_show_the_error(glyphs):
    _, trained = _models()
    ex = LatentExplorer(glyphs[2], trained, n_way=3, n_shot=2, n_query=15)
    assert "Cannot" not in ex.status.value and list(ex.backbone.options) == ["trained"]
    ex.n_shot.value = 10  # 10 + 15 > 20 examples per class
    assert "Cannot draw this episode" in ex.status.value and "n_shot + n_query" in ex.status.value
    ex.n_shot.value = 3
    assert "Cannot" not in ex.status.value and ex.shown["support_xy"].shape == (9, 2)
