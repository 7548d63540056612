"""The few-shot GNN: one graph per query, learned edges, and the properties a graph network must have."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from fslcourse.methods import get_method
from fslcourse.methods.gnn import GNN, EdgeModel


def small(n_way=3, **kw):
    torch.manual_seed(0)
    return GNN(n_way=n_way, backbone_kwargs={"hidden": 8}, node_features=6, **kw)


def episode(n_way=3, n_shot=2, n_query=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    sx = torch.rand(n_way * n_shot, 1, 28, 28, generator=g)
    sy = torch.arange(n_way).repeat_interleave(n_shot)
    return sx, sy, torch.rand(n_query, 1, 28, 28, generator=g)


def test_registered_shapes_and_the_fixed_n_way():
    assert get_method("gnn") is GNN
    model = small().eval()
    sx, sy, qx = episode()
    with torch.no_grad():
        assert model.predict(sx, sy, qx).shape == (4, 3)
    with pytest.raises(ValueError, match="n_way=2 but this GNN was built for n_way=3"):
        model.predict(sx[:4], sy[:4], qx)
    with pytest.raises(ValueError, match="need n_way >= 2"):
        GNN(n_way=1)


def test_nodes_are_embedding_and_label_code_with_the_query_first_and_unlabelled():
    model = small().eval()
    sx, sy, qx = episode()
    with torch.no_grad():
        zs, zq = model.backbone(sx), model.backbone(qx)
        h = model.graphs(zs, sy, zq)
    assert h.shape == (4, 1 + 6, 8 + 3)
    assert torch.equal(h[:, 0, :8], zq) and (h[:, 0, 8:] == 0).all()  # the query: its embedding, no label
    assert torch.equal(h[2, 1:, :8], zs) and torch.equal(h[2, 1:, 8:], F.one_hot(sy, 3).float())


def test_each_query_is_classified_by_its_own_graph():
    """Batched over queries == one graph at a time: no query sees another (eval mode, no batch statistics)."""
    model = small().eval()
    sx, sy, qx = episode()
    with torch.no_grad():
        batched = model.predict(sx, sy, qx)
        alone = torch.cat([model.predict(sx, sy, qx[i:i + 1]) for i in range(len(qx))])
        changed = model.predict(sx, sy, torch.cat([qx[:1], torch.rand(3, 1, 28, 28)]))
    assert torch.allclose(batched, alone, atol=1e-5)
    assert torch.allclose(changed[0], batched[0], atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_shuffling_the_support_nodes_changes_no_logit(seed):
    """A graph network is equivariant to node order, so the query node's scores ignore the support order."""
    model = small().eval()
    sx, sy, qx = episode(seed=seed)
    perm = torch.randperm(len(sy), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        assert torch.allclose(model.predict(sx, sy, qx), model.predict(sx[perm], sy[perm], qx), atol=1e-5)


def test_learned_adjacency_rows_are_distributions_without_self_edges():
    torch.manual_seed(1)
    edges = EdgeModel(5, 4)
    h = torch.randn(2, 6, 5)
    a = edges(h)
    assert a.shape == (2, 6, 6) and (a >= 0).all()
    assert torch.allclose(a.sum(-1), torch.ones(2, 6)) and (a.diagonal(dim1=1, dim2=2) == 0).all()
    # a function of |h_i - h_j| only: the same for translated and for negated features (a signed difference
    # would pass the first check alone), and the adjacency written out from the edge MLP
    assert torch.allclose(edges(h + 3.0), a, atol=1e-6)
    assert torch.allclose(edges(-h), a, atol=1e-6)
    scores = edges.mlp((h[:, :, None] - h[:, None]).abs()).squeeze(-1)  # (B, M, M): phi(|h_i - h_j|)
    assert torch.allclose(scores, scores.transpose(1, 2), atol=1e-6)
    eye = torch.eye(6, dtype=torch.bool)
    assert torch.allclose(a, torch.softmax(scores.masked_fill(eye, float("-inf")), dim=-1), atol=1e-6)


def test_the_graph_layers_keep_old_features_and_add_new_ones():
    model = small().eval()
    widths = [conv.linear.in_features // 2 for conv in model.convs] + [model.conv_out.linear.in_features // 2]
    assert widths == [8 + 3, 8 + 3 + 6, 8 + 3 + 12]  # dense connections: each layer adds node_features
    sx, sy, qx = episode()
    keep = []
    with torch.no_grad():
        model.forward_graphs(model.graphs(model.backbone(sx), sy, model.backbone(qx)), keep)
    assert [tuple(a.shape) for a in keep] == [(4, 7, 7)] * 3


def test_gradient_matches_finite_differences_and_reaches_every_part():
    model = small().double().eval()
    sx, sy, qx = (t.double() if t.is_floating_point() else t for t in episode())
    qy = torch.tensor([0, 1, 2, 0])

    def loss():
        return F.cross_entropy(model.predict(sx, sy, qx), qy)

    w = model.edges[0].mlp[0].weight  # deep inside: the first edge MLP of the first layer
    loss().backward()
    for idx in [(0, 0), (3, 5), (7, 10)]:
        old = w.data[idx].item()
        with torch.no_grad():
            w.data[idx] = old + 1e-6
            up = loss().item()
            w.data[idx] = old - 1e-6
            down = loss().item()
            w.data[idx] = old
        assert w.grad[idx].item() == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-8)
    for part in (model.backbone, model.edges, model.convs, model.edge_out, model.conv_out):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, part


def test_a_few_steps_fit_one_episode():
    """The whole graph (edges included) can learn: Adam on one episode drives its loss down."""
    model = small().train()
    sx, sy, qx = episode(n_query=6)
    qy = torch.tensor([0, 1, 2, 0, 1, 2])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        opt.zero_grad()
        loss = F.cross_entropy(model.predict(sx, sy, qx), qy)
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first


def test_a_graph_layer_is_its_formula_written_out():
    """h'_i = BN(W [h_i, sum_j A_ij h_j]) on a non-symmetric adjacency: messages along A^T passed every other test."""
    from fslcourse.methods.gnn import GraphConv

    torch.manual_seed(0)
    layer = GraphConv(3, 4).eval()
    layer.norm.running_mean.uniform_(-1, 1)
    layer.norm.running_var.uniform_(0.5, 2)
    h = torch.randn(2, 5, 3)  # (B, M, F)
    adjacency = torch.softmax(torch.randn(2, 5, 5), dim=-1)  # rows sum to 1; A != A^T
    assert not torch.allclose(adjacency, adjacency.transpose(1, 2))
    want = torch.empty(2, 5, 4)
    for b in range(2):
        for i in range(5):
            message = sum(adjacency[b, i, j] * h[b, j] for j in range(5))  # (F,)
            pre = layer.linear.weight @ torch.cat([h[b, i], message]) + layer.linear.bias  # (out,)
            bn = layer.norm
            want[b, i] = (pre - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    with torch.no_grad():
        assert torch.allclose(layer(h, adjacency), want, atol=1e-5)
