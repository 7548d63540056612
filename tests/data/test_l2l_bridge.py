"""Episodes through learn2learn's TaskDataset have the same structure as ours."""
import pytest
import torch

from fslcourse.data import EpisodeSampler
from fslcourse.data.l2l_bridge import l2l_taskset, task_to_episode


def test_l2l_episodes_match_ours_in_structure(glyphs):
    test = glyphs[2]
    ours = EpisodeSampler(test, 5, 2, 3, seed=0).sample()
    taskset = l2l_taskset(test, 5, 2, 3, seed=0)
    for _ in range(3):
        images, labels = taskset.sample()
        theirs = task_to_episode(images, labels, 5, 2, 3)
        for f in ("support_x", "support_y", "query_x", "query_y"):
            assert getattr(theirs, f).shape == getattr(ours, f).shape
            assert getattr(theirs, f).dtype == getattr(ours, f).dtype
        assert torch.equal(theirs.support_y, ours.support_y) and torch.equal(theirs.query_y, ours.query_y)
        # every image comes from the split, each class's examples are distinct and from one class
        all_imgs = test.get(torch.arange(test.n_classes), torch.arange(test.n_examples).expand(test.n_classes, -1))  # (n_classes, n_examples, 1, H, W)
        flat = all_imgs.flatten(2)  # (n_classes, n_examples, H*W)
        for k in range(5):
            xs = torch.cat([theirs.support_x[theirs.support_y == k], theirs.query_x[theirs.query_y == k]]).flatten(1)
            owners = {int(torch.nonzero((flat == x).all(-1))[0, 0]) for x in xs}
            assert len(owners) == 1, "a learn2learn class mixes images of two classes"
            assert len({tuple(x.tolist()) for x in xs}) == 5


def test_a_taskset_draws_from_its_own_random_state(glyphs):
    """Other uses of Python's random, or a second taskset, used to change a seeded taskset's tasks."""
    import random

    def classes(taskset, n=3):
        return [task_to_episode(*taskset.sample(), 5, 2, 3).support_x.sum().item() for _ in range(n)]

    alone = classes(l2l_taskset(glyphs[2], 5, 2, 3, seed=0))
    first = l2l_taskset(glyphs[2], 5, 2, 3, seed=0)
    random.random()
    l2l_taskset(glyphs[2], 5, 2, 3, seed=1).sample()
    assert classes(first) == alone
    assert classes(l2l_taskset(glyphs[2], 5, 2, 3, seed=1)) != alone


@pytest.mark.parametrize("args, message", [
    ((2.5, 1, 1), r"^n_way=2.5 must be a whole number >= 1$"),  # it gave 2-way tasks without a word
    ((5, 0, 1), r"^n_shot=0 must be a whole number >= 1$"),
    ((5, 1, -1), r"^n_query=-1 must be a whole number >= 0$"),
    ((5, 10, 20), r"n_shot \+ n_query = 30 but classes have \d+ examples; lower n_shot or n_query$")])
def test_bad_sizes_are_one_line_naming_the_value(glyphs, args, message):
    with pytest.raises(ValueError, match=message):
        l2l_taskset(glyphs[2], *args, seed=0)
