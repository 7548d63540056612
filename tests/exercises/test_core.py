"""Exercise checks: a right answer passes, wrong ones get a hint, the solution is never shown."""
import pytest
import torch

from fslcourse.exercises import check


def test_prototypes_exercise(capsys):
    good = lambda f, y, n: torch.stack([f[y == k].mean(0) for k in range(n)])  # noqa: E731
    assert check("prototypes", good)
    assert "all 3 cases pass" in capsys.readouterr().out
    assert not check("prototypes", lambda f, y, n: f[:n])
    assert not check("prototypes", lambda f, y, n: torch.zeros(n, 2))
    out = capsys.readouterr().out
    assert "values differ" in out and "expected shape (2, 3), got (2, 2)" in out

    def unsolved(f, y, n):
        raise NotImplementedError

    assert not check("prototypes", unsolved)
    assert "not implemented yet" in capsys.readouterr().out


def test_a_function_that_never_returns_fails_with_a_time_limit(capsys):
    import threading
    import time

    from fslcourse.exercises import core

    never = threading.Event()

    def hangs(f, y, n):
        never.wait()  # an endless loop, as far as the checker can tell

    start = time.perf_counter()
    assert not check("prototypes", hangs, time_limit=0.3)
    assert time.perf_counter() - start < 10
    out = capsys.readouterr().out
    assert "case 1: your function did not return within 0.3 s" in out and len(out.strip().splitlines()) == 1
    never.set()  # let the abandoned thread finish
    # the module constant is the default limit
    core_limit = core.TIME_LIMIT
    try:
        core.TIME_LIMIT = 0.2
        assert not check("prototypes", lambda f, y, n: time.sleep(30))
        assert "within 0.2 s" in capsys.readouterr().out
    finally:
        core.TIME_LIMIT = core_limit


def test_a_timed_check_still_reports_errors_and_keeps_the_grad_mode(capsys):
    good = lambda f, y, n: torch.stack([f[y == k].mean(0) for k in range(n)])  # noqa: E731

    def grad_mode_matters(f, y, n):
        assert not torch.is_grad_enabled(), "the caller's no_grad reaches the student's function"
        return good(f, y, n)

    with torch.no_grad():
        assert check("prototypes", grad_mode_matters)
    assert not check("prototypes", lambda f, y, n: 1 / 0)
    assert "case 1: your function raised ZeroDivisionError" in capsys.readouterr().out
    with pytest.raises(ValueError, match="time_limit=0 must be a positive number"):
        check("prototypes", good, time_limit=0)
    # no limit at all: inf overflowed the thread's join and a right function failed with "raised OverflowError"
    assert check("prototypes", good, time_limit=float("inf"))


def test_a_one_element_array_for_a_number_is_told_to_return_a_float(capsys):
    import numpy as np

    from fslcourse.exercises import EXERCISES

    reference = EXERCISES["paired_ci95"].reference  # returns (mean, half-width), two Python floats
    for wrap in (lambda v: torch.tensor([v]), lambda v: np.array([v])):
        assert not check("paired_ci95", lambda a, b: tuple(wrap(v) for v in reference(a, b)))
        out = capsys.readouterr().out
        assert "array of shape (1,)" in out and "return float(...) of its one value" in out, out


def test_a_mean_over_an_empty_class_is_named_in_the_nan_hint(capsys):
    def with_an_empty_class(f, y, n):  # class k + 1's mean for class k, and class n has no examples: NaN
        return torch.stack([f[y == (k + 1) % (n + 1)].mean(0) for k in range(n)])

    assert not check("prototypes", with_an_empty_class)
    out = capsys.readouterr().out
    assert "NaN or inf" in out and "a mean over an empty selection" in out, out


def test_a_change_in_place_inside_a_list_argument_fails(capsys):
    """Only top-level tensors were watched: a meta-gradient that also stepped θ (a tensor in the params list) and a
    paired CI that sorted the caller's accuracy lists both passed."""
    from fslcourse.exercises import EXERCISES

    meta = EXERCISES["maml_meta_gradient"].reference

    def outer_step_too(forward, params, tasks, lr, steps):
        grads = meta(forward, params, tasks, lr, steps)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(0.01 * g)  # θ stepped: the caller's weights are not what they were
        return grads

    assert not check("maml_meta_gradient", outer_step_too)
    out = capsys.readouterr().out
    assert "changed its argument 2 in place" in out and "θ changed during your call" in out, out

    paired = EXERCISES["paired_ci95"].reference

    def sorts_the_lists(acc_a, acc_b):
        answer = paired(acc_a, acc_b)
        acc_a.sort()
        return answer

    assert not check("paired_ci95", sorts_the_lists)
    assert "changed its argument 1 in place" in capsys.readouterr().out
    assert check("paired_ci95", paired)


def test_none_returned_and_an_error_raised_are_named_as_the_students(capsys):
    """'expected a tensor, got NoneType' did not say that nothing was returned, and 'case 1 raised NameError' did not
    say whose code raised it."""
    def forgot_return(f, y, n):
        torch.stack([f[y == k].mean(0) for k in range(n)])

    assert not check("prototypes", forgot_return)
    assert not check("maml_inner_loop", lambda *args: None)
    out = capsys.readouterr().out
    assert out.count("your function returned None") == 2 and "`return`" in out, out
    assert not check("prototypes", lambda f, y, n: undefined_name)  # noqa: F821
    assert "case 1: your function raised NameError: name 'undefined_name'" in capsys.readouterr().out
    from fslcourse.exercises import EXERCISES

    entropy = EXERCISES["entropy_regulariser"].reference  # its concept runs the function on a (6, 5) case of its own
    assert not check("entropy_regulariser", lambda logits: entropy(logits) if len(logits) != 6 else 1 / 0)
    assert "further case of the check, your function (or what it returned) raised ZeroDivisionError" in \
        capsys.readouterr().out


def test_a_check_called_with_gradients_off_says_so(capsys):
    """Under torch.no_grad() the MAML and gradient-penalty references raised torch's 'element 0 of tensors does not
    require grad' from inside the package, and a right entropy failed with a hint that blamed the function."""
    from fslcourse.exercises import EXERCISES

    with torch.no_grad():
        assert not check("maml_inner_loop", EXERCISES["maml_inner_loop"].reference)
        assert not check("entropy_regulariser", EXERCISES["entropy_regulariser"].reference)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and all("gradients are off where check was called" in line for line in out), out
    assert out[0].startswith("✘ maml_inner_loop: this exercise needs autograd"), out


def test_an_output_on_another_device_is_named(capsys):
    """An answer made on the course's GPU (e.g. `torch.zeros(..., device=course.device)`) for CPU inputs crashed the
    comparison with torch's 'Expected all tensors to be on the same device'; the meta device stands in for a GPU."""
    from fslcourse.exercises import EXERCISES

    for name in ("prototypes", "recombined_character", "entropy_regulariser"):
        reference = EXERCISES[name].reference
        assert not check(name, lambda *args, reference=reference: reference(*args).to("meta"))
        out = capsys.readouterr().out
        assert "output: on meta, but the inputs are on cpu: make new tensors on the inputs' device" in out, out
