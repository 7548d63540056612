"""MAML's Conv-4: the task-batched forward against the per-task forward."""
import pytest
import torch

from fslcourse.models.maml_conv import MAMLConv4


@pytest.mark.parametrize("stride", [1, 2])
def test_forward_tasks_is_each_task_through_its_own_weights(stride):
    torch.manual_seed(0)
    net = MAMLConv4(n_way=3, hidden=4, stride=stride).double()
    n_tasks = 3
    params = {k: v.detach() + 0.1 * torch.randn(n_tasks, *v.shape, dtype=v.dtype)
              for k, v in net.named_parameters()}  # a different set of weights per task
    x = torch.randn(n_tasks, 5, 1, 28, 28, dtype=torch.float64)
    got = net.forward_tasks(x, params)
    want = torch.stack([net(x[b], {k: v[b] for k, v in params.items()}) for b in range(n_tasks)])
    assert got.shape == (n_tasks, 5, 3)
    assert torch.allclose(got, want, atol=1e-10), (got - want).abs().max()
    # each task's BatchNorm statistics are its own: new images for task 0 leave the other tasks' logits alone
    x2 = x.clone()
    x2[0] = torch.randn_like(x[0])
    again = net.forward_tasks(x2, params)
    assert torch.allclose(again[1:], got[1:], atol=1e-12)
    assert not torch.allclose(again[0], got[0])
