"""evaluate(): the CI formula against scipy, determinism, and an oracle's 100%."""
import math

import pytest
import torch

from fslcourse.evaluate import evaluate, mean_ci95
from fslcourse.methods import FewShotClassifier, PixelPrototype


def test_ci95_matches_scipy_normal_interval():
    scipy_stats = pytest.importorskip("scipy.stats")
    values = [0.2, 0.9, 0.5, 0.7, 0.6, 1.0, 0.3]
    mean, half = mean_ci95(values)
    lo, hi = scipy_stats.norm.interval(0.95, loc=sum(values) / 7, scale=scipy_stats.sem(values))
    assert mean == pytest.approx((lo + hi) / 2) and half == pytest.approx((hi - lo) / 2)


def test_ci95_hand_case_and_errors():
    mean, half = mean_ci95([0.0, 1.0])
    assert mean == 0.5 and half == pytest.approx(1.959964 * math.sqrt(0.5) / math.sqrt(2), rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 values, got 1"):
        mean_ci95([1.0])


class Oracle(FewShotClassifier):
    """Knows the answer: predicts query label i // n_query (class-major order)."""

    trainable = False

    def predict(self, support_x, support_y, query_x):
        n_way = self.n_way_of(support_y)
        n_query = query_x.shape[0] // n_way
        return torch.nn.functional.one_hot(torch.arange(n_way).repeat_interleave(n_query), n_way).float()


def test_oracle_scores_100_and_same_seed_same_result(glyphs):
    res = evaluate(Oracle(), glyphs[2], 5, 1, 3, 10, seed=0)
    assert res.accuracy == 100.0 and res.ci95 == 0.0
    a = evaluate(PixelPrototype(), glyphs[2], 5, 1, 3, 20, seed=5)
    b = evaluate(PixelPrototype(), glyphs[2], 5, 1, 3, 20, seed=5)
    assert a.episode_accuracies == b.episode_accuracies
    assert "5-way 1-shot" in str(a)


def test_too_few_episodes():
    from fslcourse.data import make_glyph_split
    with pytest.raises(ValueError, match="n_episodes=1"):
        evaluate(PixelPrototype(), make_glyph_split(6, 4), 2, 1, 1, n_episodes=1)
