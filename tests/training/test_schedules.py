"""Every schedule against its closed form, step by step (step counts only, never the wall clock)."""
import math

import pytest
import torch

from fslcourse.recipe import SCHEDULES, Recipe
from fslcourse.training.schedules import closed_cosine, make_scheduler, warmup_cosine

T = 40
CLOSED = {"constant": lambda t: 1.0, "cosine": lambda t: closed_cosine(t, T, 0.1),
          "cosine-closed": lambda t: closed_cosine(t, T, 0.1), "linear": lambda t: 1 - t / T,
          "step": lambda t: 0.5 ** (t // 7), "warmup-cosine": lambda t: warmup_cosine(t, T, 5)}


def test_every_schedule_has_a_closed_form_here():
    assert set(CLOSED) == set(SCHEDULES)


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_follows_its_closed_form(name):
    recipe = Recipe(steps=T, lr=2.0, schedule=name, schedule_kwargs={"cosine": {"floor": 0.1},
                    "cosine-closed": {"floor": 0.1}, "step": {"every": 7}, "warmup-cosine": {"warmup": 5}}.get(name, {}))
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=recipe.lr)
    sched = make_scheduler(opt, recipe)
    for t in range(T + 1):
        assert opt.param_groups[0]["lr"] == pytest.approx(2.0 * CLOSED[name](t), abs=1e-9), (name, t)
        opt.step()
        if sched is not None:
            sched.step()


def test_linear_ends_at_zero_as_reptile_anneals_its_meta_step():
    assert CLOSED["linear"](T) == 0 and math.isclose(CLOSED["linear"](T // 2), 0.5)


def test_a_new_schedule_keeps_only_the_settings_it_reads():
    from fslcourse.recipe import Recipe

    cosine = Recipe(steps=10, lr=1e-3, schedule="cosine", schedule_kwargs={"floor": 0.05})
    assert cosine.replace(schedule="constant").schedule_kwargs == {}
    assert cosine.replace(schedule="cosine-closed").schedule_kwargs == {"floor": 0.05}
    with pytest.raises(ValueError, match="'floor' mean nothing to schedule='constant'"):
        cosine.replace(schedule="constant", schedule_kwargs={"floor": 0.05})  # said outright: refused


def test_warmup_cosine_known_values():
    """The closed form above is warmup_cosine itself, so a mistake in it passed: the first step runs at
    lr / warmup (not 0), the full rate is reached at step warmup - 1, the run ends at 0, and the cosine is
    float32's (as the committed diffusion checkpoints were trained): at T/2 it is cos(π/2) in float32, -4.37e-8."""
    assert warmup_cosine(0, 40, 5) == 0.2 and warmup_cosine(2, 40, 5) == pytest.approx(0.6 * 0.5 * (1 + math.cos(math.pi / 20)))
    assert warmup_cosine(4, 40, 5) == pytest.approx(0.5 * (1 + math.cos(math.pi / 10)), abs=1e-7)
    assert warmup_cosine(40, 40, 5) == pytest.approx(0.0, abs=1e-7)
    assert warmup_cosine(20, 40, 5) == 0.5 * (1 - 4.371138828673793e-08)  # float64's cos(π/2) would give 0.5


@pytest.mark.parametrize("name, closed", [
    ("cosine", lambda t: closed_cosine(t, 200)), ("cosine-closed", lambda t: closed_cosine(t, 200)),
    ("warmup-cosine", lambda t: min(1, (t + 1) / 100) * 0.5 * (1 + math.cos(math.pi * t / 200)))])
def test_the_default_settings_are_the_documented_ones(name, closed):
    """Without schedule_kwargs (maml's quick recipe gives no floor): the cosines fall to 0, the warm-up lasts
    100 steps; mutants with another default floor or warm-up passed."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = make_scheduler(opt, Recipe(steps=200, lr=1.0, schedule=name))
    for t in range(201):
        assert opt.param_groups[0]["lr"] == pytest.approx(closed(t), abs=1e-7), (name, t)
        opt.step()
        sched.step()
