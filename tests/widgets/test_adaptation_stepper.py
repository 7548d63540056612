"""The adaptation stepper: the slider and buttons change what is drawn, and the numbers are the model's."""
import re

import pytest
import torch

from fslcourse.data.sinusoid import RegressionEpisode
from fslcourse.methods.maml_regression import SinusoidMLP, adaptation_mse
from fslcourse.widgets.adaptation_stepper import AdaptationStepper


@pytest.fixture
def stepper():
    torch.manual_seed(0)
    return AdaptationStepper({"a": SinusoidMLP(), "b": SinusoidMLP()}, n_shot=5, inner_lr=0.02, max_steps=4)


def test_steps_slider_changes_curves_and_mse_matches(stepper):
    zero = stepper.shown["a"]["curve"].clone()
    stepper.steps.value = 4
    assert stepper.shown["steps"] == 4
    assert not torch.allclose(stepper.shown["a"]["curve"], zero)
    ep = RegressionEpisode(stepper.support_x[None], stepper.support_y[None], stepper.query_x[None],
                           stepper.query_y[None], stepper.amplitude, stepper.phase)
    want = adaptation_mse(stepper.models["a"], ep, lr=0.02, steps=4)[4, 0].item()
    assert stepper.shown["a"]["mse"] == pytest.approx(want, rel=1e-5)


def test_buttons_draw_new_task_and_points(stepper):
    amp, points = stepper.shown["amplitude"], stepper.shown["support_x"]
    stepper.new_points.click()
    assert stepper.shown["amplitude"] == amp and stepper.shown["support_x"] != points
    stepper.new_task.click()
    assert stepper.shown["amplitude"] != amp
    assert stepper.render() is stepper.fig


def test_empty_models_rejected():
    with pytest.raises(ValueError, match="models is empty"):
        AdaptationStepper({})


def test_drawing_a_task_from_code_redraws_at_once(stepper):
    """draw_task() and draw_points() changed the task but left the picture and `shown` on the old one."""
    amp = stepper.shown["amplitude"]
    stepper.draw_task()
    assert stepper.shown["amplitude"] == pytest.approx(float(stepper.amplitude)) != amp
    points = stepper.shown["support_x"]
    stepper.draw_points()
    assert stepper.shown["support_x"] == stepper.support_x.flatten().tolist() != points


@pytest.mark.parametrize("kwargs, says", [({"max_steps": -1}, "max_steps=-1"), ({"n_shot": 0}, "n_shot=0"),
                                          ({"n_query": 2.5}, "n_query=2.5")])
def test_bad_arguments_are_one_line_errors(kwargs, says):
    """max_steps=-1 was a TraitError from the slider; n_shot=0 failed later."""
    with pytest.raises(ValueError, match=f"^{says}: give a whole number of at least"):
        AdaptationStepper({"a": SinusoidMLP()}, **kwargs)


def test_numpy_whole_numbers_are_whole_numbers():
    import numpy as np

    assert AdaptationStepper({"a": SinusoidMLP()}, n_shot=np.int64(5), max_steps=np.int64(3)).shown["steps"] == 0


@pytest.mark.parametrize("kwargs, says", [
    ({"inner_lr": float("nan")}, "inner_lr=nan: give a finite step size of at least 0, e.g. 0.01"),
    ({"inner_lr": float("inf")}, "inner_lr=inf: give a finite step size of at least 0, e.g. 0.01"),
    ({"inner_lr": -0.01}, "inner_lr=-0.01: give a finite step size of at least 0, e.g. 0.01"),
    ({"inner_lr": "0.01"}, "inner_lr='0.01': give a finite step size of at least 0, e.g. 0.01"),
    ({"seed": 2**64}, "seed=18446744073709551616 must be a whole number from 0 to 2**64 - 1")])
def test_a_step_size_or_seed_that_means_nothing_is_refused(kwargs, says):
    """inner_lr=nan or inf drew NaN curves with 'MSE nan' in the legend; seed=2**64 was torch's overflow error."""
    with pytest.raises(ValueError, match=f"^{re.escape(says)}"):
        AdaptationStepper({"a": SinusoidMLP()}, **kwargs)
    stepper = AdaptationStepper({"a": SinusoidMLP()}, inner_lr=0, seed=2**64 - 1)  # no step at all; the last seed
    stepper.new_points.click()
    assert stepper.shown["steps"] == 0


def test_models_not_a_dict_are_refused():
    """AdaptationStepper([model]) was 'cannot convert dictionary update sequence element #0 to a sequence'."""
    with pytest.raises(ValueError, match=r"^models is a list; give a dict \{label: SinusoidMLP\}"):
        AdaptationStepper([SinusoidMLP()])
