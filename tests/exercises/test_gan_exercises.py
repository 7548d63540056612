"""The notebook-08 exercise: WGAN-GP's gradient penalty, and the mistake that passes a value check."""
import pytest
import torch

from fslcourse.exercises import check
from fslcourse.exercises.gan import penalty_reference


def _penalty(create_graph):
    def penalty(critic, real, fake, eps):
        x_hat = (eps.view(-1, *[1] * (real.dim() - 1)) * real + (1 - eps.view(-1, *[1] * (real.dim() - 1))) * fake)
        x_hat.requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=create_graph)
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    return penalty


def test_the_reference_and_a_correct_solution_pass():
    assert check("gan_gradient_penalty", penalty_reference, verbose=False)
    assert check("gan_gradient_penalty", _penalty(create_graph=True), verbose=False)


def test_a_penalty_without_create_graph_fails_with_a_hint_that_names_the_concept(capsys):
    assert not check("gan_gradient_penalty", _penalty(create_graph=False))
    out = capsys.readouterr().out
    assert "the values are right" in out and "create_graph=True" in out and "critic's weights" in out


def test_a_wrong_interpolation_fails_on_the_values(capsys):
    def swapped(critic, real, fake, eps):
        return _penalty(True)(critic, fake, real, eps)

    assert not check("gan_gradient_penalty", swapped)
    assert "values differ" in capsys.readouterr().out


def test_critic_pairs_exercise():
    def mine(source, partner):
        return torch.cat([source, partner], 1), torch.cat([source, torch.cat([partner[-1:], partner[:-1]])], 1)

    assert check("critic_pairs", mine)
    # the usual slip: both drawings moved together, so every "mismatched" pair is still one character's
    assert not check("critic_pairs", lambda s, p: (torch.cat([s, p], 1), torch.cat([s, p], 1).roll(1, 0)))
    assert not check("critic_pairs", lambda s, p: (torch.cat([s, p], 1), torch.cat([p, s], 1)))  # swapped roles


@pytest.mark.parametrize("name", ["gan_gradient_penalty", "predicted_weights", "hallucinator_loss"])
def test_checking_leaves_the_students_random_stream_alone(name):
    """The gan check seeded torch's global generator (manual_seed(707)): a student's next draw was the same whatever
    seed they had set; other checks drew from it (layers built on it), moving the notebook's stream."""
    from fslcourse.exercises.core import EXERCISES

    torch.manual_seed(1)
    check(name, EXERCISES[name].reference, verbose=False)
    after = torch.rand(3)
    torch.manual_seed(1)
    assert torch.equal(after, torch.rand(3))
