"""The notebook-06 exercise accepts a correct SS convolution and rejects the usual mistakes."""
import numpy as np
import torch
import torch.nn.functional as F

from fslcourse.exercises import check


def test_ss_conv_exercise_accepts_a_correct_solution_and_rejects_mistakes():
    def from_scratch(x, weight, bias, scale, shift):
        return F.conv2d(x, weight * scale[:, None, None, None], bias + shift, padding=1)

    assert check("ss_conv2d", from_scratch, verbose=False)
    assert not check("ss_conv2d", lambda x, w, b, s, t: F.conv2d(x, w, b, padding=1), verbose=False)  # Φ ignored
    assert not check("ss_conv2d", lambda x, w, b, s, t: F.conv2d(x, w * s[:, None, None, None], b * s + t, padding=1),
                     verbose=False)  # the bias scaled too
    assert not check("ss_conv2d", lambda x, w, b, s, t: F.conv2d(x, w * s[:, None, None, None], b + t), verbose=False)


def test_failure_class_exercise_needs_the_tie_break_and_the_class_id(capsys):
    def per_class(logits, query_y, n_way):
        hits = (logits.argmax(1) == query_y).float()
        loss = F.cross_entropy(logits, query_y, reduction="none")
        acc = torch.stack([hits[query_y == k].mean() for k in range(n_way)])
        return acc, torch.stack([loss[query_y == k].mean() for k in range(n_way)])

    def right(logits, query_y, classes):
        acc, loss = per_class(logits, query_y, len(classes))
        worst = min(range(len(classes)), key=lambda k: (acc[k].item(), -loss[k].item()))
        return int(classes[worst])

    def no_tie_break(logits, query_y, classes):
        acc, _ = per_class(logits, query_y, len(classes))
        return int(classes[acc.argmin()])

    def position(logits, query_y, classes):  # the position in the task, not the class's id in the split
        acc, loss = per_class(logits, query_y, len(classes))
        return min(range(len(classes)), key=lambda k: (acc[k].item(), -loss[k].item()))

    assert check("mtl_failure_class", right)
    assert not check("mtl_failure_class", no_tie_break)
    assert not check("mtl_failure_class", position)
    assert "✘ mtl_failure_class" in capsys.readouterr().out


def test_in_place_edits_of_an_argument_fail_the_check(capsys):
    """`w *= scale` passed, and notebook 06 hands the student the frozen pretrained weight: it was rescaled."""
    def in_place(x, weight, bias, scale, shift):
        weight *= scale[:, None, None, None]
        return F.conv2d(x, weight, bias + shift, padding=1)

    assert not check("ss_conv2d", in_place)
    assert "changed its argument 2 in place" in capsys.readouterr().out


def test_failure_class_holes_are_closed(capsys):
    """Ranking by loss alone, breaking ties towards the last class, and a tensor of every tied id all passed (the
    last crashed the check with 'Boolean value of Tensor ... is ambiguous')."""
    def by_loss_only(logits, y, classes):
        loss = F.cross_entropy(logits, y, reduction="none")
        return int(classes[torch.stack([loss[y == k].mean() for k in range(len(classes))]).argmax()])

    def ties_to_last(logits, y, classes):
        acc = [(logits.argmax(1)[y == k] == k).float().mean().item() for k in range(len(classes))]
        return int(classes[max(range(len(classes)), key=lambda k: (-acc[k], k))])

    def every_tied(logits, y, classes):
        acc = torch.stack([(logits.argmax(1)[y == k] == k).float().mean() for k in range(len(classes))])
        return classes[acc == acc.min()]

    for wrong in (by_loss_only, ties_to_last):
        assert not check("mtl_failure_class", wrong)
    assert not check("mtl_failure_class", every_tied)
    assert "expected one int, got an array of shape" in capsys.readouterr().out
    # one id as a numpy or one-element torch scalar is an answer, as a Python int is
    from fslcourse.exercises.mtl import failure_class_reference as ref
    assert check("mtl_failure_class", lambda logits, y, classes: np.int64(ref(logits, y, classes)))
    assert check("mtl_failure_class", lambda logits, y, classes: torch.tensor(ref(logits, y, classes)))
