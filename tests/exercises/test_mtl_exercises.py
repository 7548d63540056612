"""The notebook-06 exercise accepts a correct SS convolution and rejects the usual mistakes."""
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
