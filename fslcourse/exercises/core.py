"""Automatic checks for the course's exercises.

Each exercise registers a reference function and hidden test cases. ``check``
runs the student's function on every case and prints one line: a pass, or a
hint that says which output was wrong (its shape, dtype or values) without
showing the solution. It returns ``True`` or ``False`` so tests can use it.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

EXERCISES: dict[str, Exercise] = {}


@dataclass
class Exercise:
    """A reference implementation and a function that makes hidden cases.

    Attributes:
        name: what notebooks pass to :func:`check`.
        reference: the correct function.
        cases: ``cases() -> list[tuple]``: argument tuples for both functions.
        description: one line naming what is being checked.
        atol, rtol: tolerances for comparing tensors.
        concept: ``concept(fn) -> hint or None``, run once every value matches: checks the property the
            exercise teaches (e.g. that MAML's adapted weights keep the graph back to θ), which equal values
            alone cannot show, and names the concept when it fails.
        diagnose: ``diagnose(fn) -> hint or None``, run when a value differs: recognises a likely mistake
            (e.g. a meta-gradient that ignores the query set) and names its concept, never the solution.
    """

    name: str
    reference: Callable
    cases: Callable[[], list]
    description: str
    atol: float = 1e-5
    rtol: float = 1e-4
    concept: Callable | None = None
    diagnose: Callable | None = None


def exercise(name: str, description: str, cases: Callable[[], list], atol: float = 1e-5, rtol: float = 1e-4,
             concept: Callable | None = None, diagnose: Callable | None = None):
    """Decorator that registers ``reference`` as the solution of exercise ``name`` (``concept``, ``diagnose``: see
    :class:`Exercise`)."""
    def wrap(reference):
        if name in EXERCISES:
            raise ValueError(f"exercise {name!r} is already registered")
        EXERCISES[name] = Exercise(name, reference, cases, description, atol, rtol, concept, diagnose)
        return reference
    return wrap


def _compare(got, want, ex: Exercise, where: str) -> str | None:
    """``None`` if ``got`` matches ``want``, else a hint naming the mismatch."""
    if got is None and want is not None:
        return f"{where}: your function returned None (is a `return` missing?)"
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            return f"{where}: expected {len(want)} outputs, got {type(got).__name__}"
        for i, (g, w) in enumerate(zip(got, want)):
            hint = _compare(g, w, ex, f"{where}[{i}]")
            if hint:
                return hint
        return None
    if torch.is_tensor(want):
        if not torch.is_tensor(got):
            return f"{where}: expected a tensor, got {type(got).__name__}"
        if tuple(got.shape) != tuple(want.shape):
            return f"{where}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
        if got.device != want.device:  # e.g. torch.zeros(..., device=course.device) for inputs on the CPU
            return (f"{where}: on {got.device}, but the inputs are on {want.device}: make new tensors on the inputs' "
                    "device (e.g. torch.zeros(..., device=x.device))")
        if got.dtype.is_floating_point != want.dtype.is_floating_point or \
                (not want.dtype.is_floating_point and got.dtype != want.dtype):  # uint8 pixels are not int64 or bool
            return f"{where}: expected dtype {want.dtype}, got {got.dtype}"
        if want.dtype.is_floating_point:
            if bool((~torch.isfinite(got) & torch.isfinite(want)).any()):
                return (f"{where}: NaN or inf where the expected values are finite: a 0/0 (a mean over an empty "
                        "selection, such as a class with no examples?) or an exp() that overflows on large inputs "
                        "(compute it in a numerically stable way)")
            if not torch.allclose(got.to(want.dtype), want, atol=ex.atol, rtol=ex.rtol):
                err = (got.to(want.dtype) - want).abs().max().item()
                return f"{where}: values differ from the expected ones (largest difference {err:.3g})"
        elif not torch.equal(got.to(want.dtype), want):
            wrong = (got.to(want.dtype) != want).sum().item()
            return f"{where}: {wrong} of {want.numel()} entries differ from the expected ones"
        return None
    if isinstance(want, float):
        if not isinstance(got, (int, float)) and hasattr(got, "item") and getattr(got, "ndim", None) == 0:
            return (f"{where}: expected a Python float, got a {type(got).__module__.split('.')[0]} scalar "
                    f"{got.item()!r}: return float(...) of it")
        if not isinstance(got, (int, float)) and hasattr(got, "ndim") and getattr(got, "size", None) is not None:
            size = got.numel() if torch.is_tensor(got) else got.size  # numpy: .size is the number of values
            if size == 1:
                return (f"{where}: expected a Python float, got a {type(got).__module__.split('.')[0]} array of shape "
                        f"{tuple(got.shape)} holding {got.item()!r}: return float(...) of its one value")
        ok = isinstance(got, (int, float)) and abs(got - want) <= ex.atol + ex.rtol * abs(want)
        return None if ok else f"{where}: expected a number close to the right value, got {got!r}"
    if torch.is_tensor(got) or hasattr(got, "ndim"):  # a tensor or numpy value: `tensor([61, 7]) == 61` is no answer
        n_values = got.numel() if torch.is_tensor(got) else got.size  # numpy: .size is the number of values
        if n_values != 1:
            return (f"{where}: expected one {type(want).__name__}, got an array of shape {tuple(got.shape)}: "
                    "one value is asked for")
        got = got.item()  # a one-element tensor or a numpy scalar holds one answer
    return None if got == want else f"{where}: {got!r} is not the expected value"


STUB_TEXT = "replace this line with your solution"  # after "NAME: " in a student-edition stub (scripts/editions.py)
TIME_LIMIT = 60.0  # seconds one case may take before the check gives up on it


GRAD_OFF = ("gradients are off where check was called (inside torch.no_grad() or torch.inference_mode(), or after "
            "torch.set_grad_enabled(False)): call check outside it, or torch.set_grad_enabled(True) first")


class _TimedOut(Exception):
    pass


def _call_with_limit(fn: Callable, args: list, limit: float):
    """``fn(*args)`` in a daemon thread; raises :class:`_TimedOut` if it has not returned after ``limit`` s.

    The thread keeps the caller's autograd mode. A function that never returns keeps running in the
    background (Python cannot stop a thread); the check reports it instead of hanging.
    """
    outcome: dict = {}
    grad = torch.is_grad_enabled()

    def run():
        try:
            with torch.set_grad_enabled(grad):
                outcome["value"] = fn(*args)
        except BaseException as err:  # handed back to the caller's thread and raised there
            outcome["error"] = err

    thread = threading.Thread(target=run, name="fslcourse-exercise-check", daemon=True)
    thread.start()
    thread.join(None if limit >= threading.TIMEOUT_MAX else limit)  # time_limit=inf: no limit (join refuses inf)
    if thread.is_alive():
        raise _TimedOut
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def check(name: str, fn: Callable, verbose: bool = True, time_limit: float | None = None) -> bool:
    """Run the student's ``fn`` on exercise ``name``'s hidden cases.

    Prints ``"✔ <name>: all N cases pass"`` or ``"✘ <name>: case i: <hint>"`` and
    returns whether every case passed. Exceptions raised by ``fn`` count as a
    failure and their type and message are shown; so does a case that does not
    return within ``time_limit`` seconds (default :data:`TIME_LIMIT`; a case whose reference
    takes longer gets ten times the reference's time), e.g. an endless loop. The notebook's
    global torch generator is left as it was: the cases draw, and may seed, within a fork of it.
    """
    with torch.random.fork_rng(devices=[]):
        return _check(name, fn, verbose, time_limit)


def _check(name: str, fn: Callable, verbose: bool, time_limit: float | None) -> bool:
    if isinstance(fn, str) and not isinstance(name, str):  # check(my_prototypes, "prototypes")
        raise ValueError(f"check() takes the exercise's name first, then your function: "
                         f"check({fn!r}, {getattr(name, '__name__', 'my_function')})")
    if not isinstance(name, str) or name not in EXERCISES:
        raise ValueError(f"exercise {name!r} is not known; known: {', '.join(sorted(EXERCISES))}")
    if not callable(fn):  # check("prototypes", my_prototypes(features, labels, n_way))
        raise ValueError(f"check({name!r}, fn) needs your function itself, not a {type(fn).__name__} (the result of "
                         f"calling it?): check({name!r}, my_function)")
    limit = TIME_LIMIT if time_limit is None else time_limit
    if not isinstance(limit, (int, float)) or isinstance(limit, bool) or not limit > 0:
        raise ValueError(f"time_limit={time_limit!r} must be a positive number of seconds")
    ex = EXERCISES[name]
    cases = ex.cases()
    changed_inside = None  # (case, argument): a list, tuple or module argument whose contents the student changed
    for i, args in enumerate(cases):
        start = time.perf_counter()
        try:
            want = ex.reference(*args)
        except RuntimeError:  # autograd refuses under no_grad: the caller's mode, not the student's function
            if torch.is_grad_enabled():
                raise
            return _say(f"✘ {name}: this exercise needs autograd, but {GRAD_OFF}", verbose, False)
        case_limit = max(limit, 10 * (time.perf_counter() - start))  # a slow case gets 10x the reference's time
        given = [a.clone() if torch.is_tensor(a) else a for a in args]  # the student's copies: watched for changes
        kept = [None if torch.is_tensor(a) else _snapshot(a) for a in args]  # lists, tuples, modules: handed over as is
        try:
            got = _call_with_limit(fn, given, case_limit)
        except _TimedOut:
            msg = (f"✘ {name}: case {i + 1}: your function did not return within {case_limit:.3g} s; look for a loop "
                   f"that never ends (it may still be running: restart the kernel if the notebook is slow)")
            return _say(msg, verbose, False)
        except NotImplementedError as err:
            return _say(_not_implemented(name, fn, err), verbose, False)
        except Exception as err:  # the student's code failed: report it, do not hide it
            hint = f"case {i + 1}: your function raised {type(err).__name__}: {err}"
            return _say(f"✘ {name}: {_with_diagnosis(hint, ex, fn)}", verbose, False)
        changed = [k + 1 for k, (a, g) in enumerate(zip(args, given)) if torch.is_tensor(a) and not _unchanged(a, g)]
        if changed:  # e.g. a frozen pretrained weight rescaled in place by `w *= scale`
            return _say(f"✘ {name}: case {i + 1}: your function changed its argument {changed[0]} in place (an "
                        "in-place operation such as `x *= s` or `x.add_(...)`); compute a new tensor instead, so "
                        "that the caller's tensors stay as they were", verbose, False)
        hint = _compare(got, want, ex, "output")
        if hint:
            return _say(f"✘ {name}: case {i + 1} of {len(cases)}: {_with_diagnosis(hint, ex, fn)}", verbose, False)
        inside = [k + 1 for k, (a, s) in enumerate(zip(args, kept)) if s is not None and not _same(s, a)]
        if inside and not changed_inside:  # reported once the values and the concept are judged: its hint is sharper
            changed_inside = (i + 1, inside[0])
    if ex.concept is not None:
        try:
            hint = ex.concept(fn)
        except Exception as err:  # the student's code failed on the concept's own case: report it
            hint = f"on a further case of the check, your function (or what it returned) raised {type(err).__name__}: {err}"
        if hint:
            return _say(f"✘ {name}: the values are right, but {hint}", verbose, False)
    if changed_inside:  # e.g. θ, a tensor in the params list, stepped by `p.sub_(...)`; acc_a.sort()
        case, k = changed_inside
        hint = (f"case {case}: your function changed its argument {k} in place (a tensor in it, e.g. by `p -= ...` or "
                "`p.sub_(...)`, or the list itself, e.g. by `.sort()`); work on new tensors or a copy, so that the "
                "caller's values stay as they were")
        return _say(f"✘ {name}: the values are right, but {_with_diagnosis(hint, ex, fn)}", verbose, False)
    return _say(f"✔ {name}: all {len(cases)} cases pass ({ex.description})", verbose, True)


def _with_diagnosis(hint: str, ex: Exercise, fn: Callable) -> str:
    """``hint``, followed by the mistake ``ex.diagnose`` recognises in ``fn`` (a value that differs, or an error: a
    meta-gradient that steps θ in place fails inside autograd, and the diagnosis names the cause)."""
    if ex.diagnose is None:
        return hint
    try:
        mistake = ex.diagnose(fn)
    except Exception:  # the diagnosis is a bonus: the hint stands on its own
        mistake = None
    return f"{hint}; {mistake}" if mistake else hint


def matching_slip(got, slipped: Callable, slips) -> str | None:
    """For a ``diagnose``: the hint of the first ``(slip, hint)`` of ``slips`` whose ``slipped(**slip)`` ``got`` equals.

    ``slipped`` is the exercise written out with one of its usual mistakes switched on by keyword (``slip``); equal
    means a tensor of the same shape, within ``atol=1e-5``. ``None``: no slip gives ``got``.
    """
    for slip, hint in slips:
        if torch.is_tensor(got) and got.shape == (want := slipped(**slip)).shape and torch.allclose(got, want, atol=1e-5):
            return hint
    return None


def _not_implemented(name: str, fn: Callable, err: NotImplementedError) -> str:
    """The line for a stub: the student's own, or one that their function calls (a stub of the student edition says
    ``"my_inner_loop: replace this line with your solution"``), which the line then names."""
    stub, _, rest = str(err).partition(":")
    if rest.strip() == STUB_TEXT and stub != getattr(fn, "__name__", stub):
        return (f"✘ {name}: {stub}, which your function calls, is not implemented yet; fill it in (its exercise "
                "comes earlier), run its cell, then run this one again")
    return f"✘ {name}: not implemented yet; fill in the function and run this cell again"


def _unchanged(before: torch.Tensor, after: torch.Tensor) -> bool:
    """Whether the copy handed to the student still holds the case's values (NaN where NaN was)."""
    if after.shape != before.shape or after.dtype != before.dtype:
        return False
    before, after = before.detach(), after.detach()
    return torch.equal(before, after) or (before.dtype.is_floating_point and
                                          torch.allclose(before, after, rtol=0, atol=0, equal_nan=True))


def _snapshot(value):
    """The values inside a list, tuple or module argument (a tensor, a parameter, a number), to see afterwards
    whether the student's function changed them; ``None`` for an argument with nothing to watch (a function)."""
    if torch.is_tensor(value):
        return value.detach().clone()
    if isinstance(value, torch.nn.Module):
        return [t.detach().clone() for t in [*value.parameters(), *value.buffers()]]
    if isinstance(value, (list, tuple)):
        return [_snapshot(v) for v in value]
    return value if isinstance(value, (int, float, str)) else None


def _same(before, now) -> bool:
    """Whether ``now`` (an argument after the call) still holds the values :func:`_snapshot` kept as ``before``."""
    if isinstance(now, torch.nn.Module):
        now = [*now.parameters(), *now.buffers()]
    if torch.is_tensor(before):
        return torch.is_tensor(now) and _unchanged(before, now.detach())
    if isinstance(before, list):
        return isinstance(now, (list, tuple)) and len(now) == len(before) and all(map(_same, before, now))
    if isinstance(before, float) and before != before:  # NaN where NaN was
        return isinstance(now, float) and now != now
    return before is None or before == now


def _say(msg: str, verbose: bool, ok: bool) -> bool:
    if not ok and not torch.is_grad_enabled() and GRAD_OFF not in msg:  # a failure may come from the caller's mode
        msg = f"{msg} (note: {GRAD_OFF})"
    if verbose:
        print(msg)
    return ok
