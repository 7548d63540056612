"""The episode browser: changing a control changes what is shown; impossible settings show the error."""
import torch

from fslcourse.widgets.episode_browser import EpisodeBrowser


def test_controls_change_the_episode(glyphs):
    b = EpisodeBrowser({"train": glyphs[0], "test": glyphs[2]}, n_way=3, n_shot=2, n_query=1, seed=0)
    first = b.shown_classes().clone()
    assert b.episode.support_x.shape == (6, 1, 28, 28)
    assert len(b.figure.axes) == 3 * 3
    b.seed.value = 1
    assert not torch.equal(first, b.shown_classes())
    b.next.click()
    assert b.seed.value == 2
    b.n_way.value = 4
    assert b.episode.n_way == 4 and len(b.figure.axes) == 4 * 3
    b.split_box.value = "test"
    assert all(c < glyphs[2].n_classes for c in b.shown_classes().tolist())
    assert "classes: 0=" in b.status.value


def test_impossible_settings_show_the_error():
    from fslcourse.data import make_glyph_split
    b = EpisodeBrowser({"test": make_glyph_split(n_classes=6, n_examples=5)}, n_way=3)
    b.n_shot.value = 3
    b.n_query.value = 3
    assert b.episode is None and "n_shot + n_query" in b.status.value
    b.n_query.value = 2
    assert b.episode is not None


def test_the_sliders_reach_an_impossible_episode_and_redraw_on_release(glyphs):
    """Notebook 01 asks students to try K + Q > 20: the sliders must reach it, and the error must show."""
    from fslcourse.widgets.episode_browser import EpisodeBrowser

    b = EpisodeBrowser({"test": glyphs[2]}, n_way=3, n_shot=1, n_query=1)
    assert b.n_shot.max + b.n_query.max > glyphs[2].n_examples
    assert not any(s.continuous_update for s in (b.n_way, b.n_shot, b.n_query))
    b.n_shot.value, b.n_query.value = 15, 10
    assert "Cannot build this episode" in b.status.value
