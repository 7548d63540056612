"""The episode browser: changing a control changes what is shown; impossible settings show the error."""
import html

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fslcourse.data import EpisodeSampler, make_glyph_split
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


def test_next_seed_after_the_top_of_torchs_range_is_0(glyphs):
    from fslcourse.config import SEED_MAX
    b = EpisodeBrowser({"test": glyphs[2]}, n_way=3, seed=SEED_MAX)
    assert b.episode is not None
    b.next.click()
    assert b.seed.value == 0 and b.episode is not None and "Cannot" not in b.status.value


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


SPLITS = {"big": make_glyph_split(n_classes=20, n_examples=20, seed=0),
          "small": make_glyph_split(n_classes=3, n_examples=4, seed=1)}


@settings(max_examples=12, deadline=None, derandomize=True)
@given(moves=st.lists(st.tuples(st.sampled_from(["split", "n_way", "n_shot", "n_query", "seed", "next"]),
                                st.sampled_from([0, 1, 2, 19, 20, 2**64 - 1, 2**64])), min_size=1, max_size=5))
def test_any_order_of_controls_at_their_ends_shows_the_episode_they_ask_for_or_one_line(moves):
    """Sliders at their ends, seeds at 0, the top of torch's range and past it, the split switched mid-way, in any order:
    the episode shown is always the one the controls now ask for, or there is none and the status line says why."""
    b = EpisodeBrowser(SPLITS, n_way=2, n_shot=1, n_query=1)
    for control, value in moves:
        if control == "split":
            b.split_box.value = "small" if b.split_box.value == "big" else "big"
        elif control == "next":
            b.next.click()
        elif control == "seed":
            b.seed.value = value
        else:  # a slider: its ends, or a value it clamps to its range
            slider = getattr(b, control)
            slider.value = min(max(value, slider.min), slider.max)
    controls = (b.n_way.value, b.n_shot.value, b.n_query.value)
    try:
        want = EpisodeSampler(SPLITS[b.split_box.value], *controls, seed=b.seed.value).sample()
    except ValueError as err:
        assert b.episode is None and b.figure is None
        assert b.status.value == f"<b style='color:#b00'>Cannot build this episode:</b> {html.escape(str(err), quote=False)}"
        return
    ep = b.episode
    assert (ep.n_way, ep.n_shot, ep.n_query) == controls and torch.equal(ep.classes, want.classes)
    assert torch.equal(ep.support_x, want.support_x) and len(b.figure.axes) == ep.n_way * (ep.n_shot + ep.n_query)
