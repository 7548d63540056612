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


def test_meta_gradient_reference_passes_and_matches_finite_differences():
    from fslcourse.exercises.maml import meta_gradient_reference

    assert check("maml_meta_gradient", meta_gradient_reference, verbose=False)
    forward, params, tasks, lr, steps = EXERCISES["maml_meta_gradient"].cases()[0]
    params = [p.detach().double().requires_grad_() for p in params]
    tasks = [tuple(t.double() for t in task) for task in tasks]
    grads = meta_gradient_reference(forward, params, tasks, lr, steps)

    def meta_loss(ps):
        from fslcourse.exercises.maml import inner_loop_reference
        return torch.stack([F.mse_loss(forward(inner_loop_reference(forward, ps, sx, sy, lr, steps), qx), qy)
                            for sx, sy, qx, qy in tasks]).mean()

    eps = 1e-6
    for i, j in ((0, 1), (2, 3), (3, 0)):
        plus = [p.detach().clone().requires_grad_() for p in params]
        minus = [p.detach().clone().requires_grad_() for p in params]
        plus[i].data.view(-1)[j] += eps
        minus[i].data.view(-1)[j] -= eps
        numeric = (meta_loss(plus) - meta_loss(minus)).item() / (2 * eps)
        assert abs(grads[i].view(-1)[j].item() - numeric) < 1e-6


def _tutorial_maml(forward, params, tasks, lr, steps):
    """The source article's MAML class, in this exercise's form: the optimizer steps θ itself on every support set."""
    opt = torch.optim.SGD(params, lr=lr)
    for sx, sy, qx, qy in tasks:
        for _ in range(steps):
            opt.zero_grad()
            F.mse_loss(forward(params, sx), sy).backward()
            opt.step()
    return [p.grad.clone() for p in params]


def test_the_tutorials_class_fails_and_the_hint_names_theta_changing(capsys):
    assert not check("maml_meta_gradient", _tutorial_maml)
    assert "θ changed during your call" in capsys.readouterr().out


def test_support_only_and_first_order_meta_gradients_fail_with_their_concept(capsys):
    from fslcourse.exercises.maml import inner_loop_reference

    def support_only(forward, params, tasks, lr, steps):
        losses = [F.mse_loss(forward(inner_loop_reference(forward, params, sx, sy, lr, steps), sx), sy)
                  for sx, sy, qx, qy in tasks]
        return list(torch.autograd.grad(torch.stack(losses).mean(), params))

    def first_order(forward, params, tasks, lr, steps):
        total = [torch.zeros_like(p) for p in params]
        for sx, sy, qx, qy in tasks:
            phi = params
            for _ in range(steps):
                grads = torch.autograd.grad(F.mse_loss(forward(phi, sx), sy), phi)
                phi = [p - lr * g for p, g in zip(phi, grads)]
            total = [t + g for t, g in zip(total, torch.autograd.grad(F.mse_loss(forward(phi, qx), qy), params))]
        return [t / len(tasks) for t in total]

    assert not check("maml_meta_gradient", support_only)
    assert "does not depend on the query set" in capsys.readouterr().out
    assert not check("maml_meta_gradient", first_order)
    assert "first-order MAML" in capsys.readouterr().out


def test_an_inner_loop_that_updates_theta_in_place_is_named(capsys):
    """The values can come out right (the case's θ is a list the check does not copy), so the diagnosis must name
    the in-place update rather than send the student to create_graph=True."""
    def in_place(forward, params, support_x, support_y, inner_lr, steps):
        for _ in range(steps):
            grads = torch.autograd.grad(F.mse_loss(forward(params, support_x), support_y), params, create_graph=True)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    p.sub_(inner_lr * g)
        return params

    assert not check("maml_inner_loop", in_place)
    out = capsys.readouterr().out
    assert "θ changed during your call" in out and "in-place" in out


def test_a_meta_gradient_that_crashes_on_a_theta_stepped_in_place_is_named(capsys):
    """The tutorial's shape with autograd.grad of the mean query loss after the steps raises inside autograd; the
    check showed only that RuntimeError, while the diagnosis names the cause (the mistake finder runs on errors too)."""
    def steps_then_grad(forward, params, tasks, lr, steps):
        opt = torch.optim.SGD(params, lr=lr)
        losses = []
        for sx, sy, qx, qy in tasks:
            for _ in range(steps):
                opt.zero_grad()
                F.mse_loss(forward(params, sx), sy).backward()
                opt.step()
            losses.append(F.mse_loss(forward(params, qx), qy))
        return list(torch.autograd.grad(torch.stack(losses).mean(), params))

    assert not check("maml_meta_gradient", steps_then_grad)
    out = capsys.readouterr().out
    assert "raised RuntimeError" in out and "θ changed during your call" in out, out
