"""The notebook-05 exercise: its check passes the reference and catches wrong inner loops."""
import torch
import torch.nn.functional as F

from fslcourse.exercises import EXERCISES, check
from fslcourse.exercises.maml import inner_loop_reference


def test_reference_passes():
    assert check("maml_inner_loop", inner_loop_reference, verbose=False)


def test_wrong_sign_and_missing_steps_fail(capsys):
    def ascent(forward, params, x, y, lr, steps):
        for _ in range(steps):
            grads = torch.autograd.grad(F.mse_loss(forward(params, x), y), params, create_graph=True)
            params = [p + lr * g for p, g in zip(params, grads)]
        return params

    def one_step(forward, params, x, y, lr, steps):
        return ascent(forward, params, x, y, -lr, 1)

    assert not check("maml_inner_loop", ascent)
    assert not check("maml_inner_loop", one_step)
    assert "differ" in capsys.readouterr().out


def test_reference_keeps_the_graph():
    forward, params, x, y, lr, steps = EXERCISES["maml_inner_loop"].cases()[1]
    adapted = inner_loop_reference(forward, params, x, y, lr, steps)
    meta = torch.autograd.grad(F.mse_loss(forward(adapted, x), y), params)
    assert all(torch.isfinite(g).all() for g in meta) and any(g.abs().sum() > 0 for g in meta)


def test_a_first_order_inner_loop_fails_with_a_hint_that_names_the_concept(capsys):
    """First-order MAML gives the same adapted values, so only the meta-gradient can tell: the check looks at it."""
    def first_order(forward, params, x, y, lr, steps):
        for _ in range(steps):
            grads = torch.autograd.grad(F.mse_loss(forward(params, x), y), params)  # no create_graph
            params = [p - lr * g for p, g in zip(params, grads)]
        return params

    def detached(forward, params, x, y, lr, steps):
        return [p.detach() for p in first_order(forward, params, x, y, lr, steps)]

    assert not check("maml_inner_loop", first_order)
    out = capsys.readouterr().out
    assert "the values are right" in out and "second-order term" in out and "create_graph=True" in out
    assert not check("maml_inner_loop", detached)
    assert "carry no graph back to θ" in capsys.readouterr().out
