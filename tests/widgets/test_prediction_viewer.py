"""The prediction viewer: Next/Prev step through evaluate()'s episodes; what is shown matches predict()."""
import numpy as np
import pytest
import torch

from fslcourse.data import EpisodeSampler
from fslcourse.methods import PixelPrototype, ProtoNet
from fslcourse.widgets.plotting import tile as _tile
from fslcourse.widgets.prediction_viewer import PredictionViewer


def test_next_prev_and_predictions(glyphs):
    split = glyphs[2]
    v = PredictionViewer(PixelPrototype(), split, n_way=4, n_shot=2, n_query=3, seed=7)
    ref = EpisodeSampler(split, 4, 2, 3, seed=7)
    ep0, ep1 = ref.sample(), ref.sample()
    assert torch.equal(v.shown["episode"].query_x, ep0.query_x) and v.prev.disabled
    v.next.click()
    assert v.index == 1 and torch.equal(v.shown["episode"].classes, ep1.classes) and not v.prev.disabled
    r = v.shown["pixel"]
    logits = PixelPrototype().predict(ep1.support_x, ep1.support_y, ep1.query_x)
    assert torch.equal(r["pred"], logits.argmax(1))
    assert torch.allclose(r["prob"], torch.softmax(logits, 1).max(1).values)
    assert abs(r["accuracy"] - 100 * (logits.argmax(1) == ep1.query_y).float().mean().item()) < 1e-9
    assert f"pixel: {r['accuracy']:.1f}%" in v.label.value and "episode 1" in v.label.value
    v.prev.click()
    assert v.index == 0 and torch.equal(v.shown["episode"].classes, ep0.classes) and v.prev.disabled
    # one support panel and one query panel; each query's corner shows its predicted class's colour
    assert len(v.fig.axes) == 2
    from fslcourse.widgets.plotting import class_colour
    pixels = v.fig.axes[1].images[0].get_array()
    r = v.shown["pixel"]
    for i, k in enumerate(r["pred"].tolist()):
        row, col = divmod(i, 3)
        corner = pixels[row * (28 + 11) + 3, col * (28 + 6) + 3 + 27]
        assert np.allclose(corner, class_colour(k))
    # a wrong query's frame is dashed (white gaps along its top edge), a right one's solid: seen without colour too
    from fslcourse.widgets.plotting import RIGHT, WRONG
    for i, ok in enumerate(r["correct"].tolist()):
        row, col = divmod(i, 3)
        top = pixels[row * (28 + 11) + 1, col * (28 + 6) + 1:col * (28 + 6) + 33]  # the frame's top edge
        assert np.allclose(top, RIGHT) if ok else (np.isclose(top, 1.0).all(1).any() and np.isclose(top, WRONG).all(1).any())
    assert not r["correct"].all() and r["correct"].any()  # both kinds were checked


def test_methods_side_by_side(glyphs):
    torch.manual_seed(0)
    methods = {"pixels": PixelPrototype(), "random net": ProtoNet(backbone_kwargs={"hidden": 4}).eval()}
    v = PredictionViewer(methods, glyphs[2], n_way=3, n_shot=1, n_query=2, seed=0)
    assert [ax.get_title().split("\n")[0] for ax in v.fig.axes[1:]] == ["pixels", "random net"]
    assert set(v.shown) >= {"pixels", "random net", "episode", "index"}
    assert v.shown["random net"]["probs"].shape == (6, 3)


def test_tile_marks_frames_and_bars():
    imgs = torch.zeros(2, 4, 4).numpy()
    frames = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]).numpy()
    bars = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).numpy()
    out = _tile(imgs, frames, bars, 1, 2, pad=2)
    assert out.shape == (4 + 4 + 5, 2 * 8, 3)
    assert (out[2:6, 2:6] == 1).all()  # blank image = white
    assert tuple(out[1, 1]) == (0.0, 1.0, 0.0) and tuple(out[1, 9]) == (1.0, 0.0, 0.0)
    assert out[9, 6, 1] > 0.5 and out[9, 14, 0] == 0.85  # full green bar vs empty bar


def test_a_blitted_picture_equals_one_drawn_from_scratch(glyphs, png_pixels):
    """Next redraws only the changing artists over the kept static pixels: the PNG is what a full draw gives."""
    pixels = png_pixels
    methods = {"pixels": PixelPrototype(), "pixels, again with a long name": PixelPrototype()}
    stepped = PredictionViewer(methods, glyphs[2], n_way=4, n_shot=1, n_query=2, seed=3)
    first = pixels(stepped.png())
    for _ in range(2):
        stepped.next.click()
    fresh = PredictionViewer(methods, glyphs[2], n_way=4, n_shot=1, n_query=2, seed=3)
    for _ in range(2):
        fresh.episode(fresh.index + 1)
    fresh.index = 2
    fresh._background = None  # the next png() draws the whole figure once more
    fresh.render()
    assert stepped._background is not None and "episode 2" in stepped._episode_text.get_text()
    assert np.array_equal(pixels(stepped.png()), pixels(fresh.png()))
    assert not np.array_equal(first, pixels(stepped.png()))  # the episode changed


def test_a_picture_at_another_dpi_is_drawn_whole(glyphs, png_pixels):
    """png(scale=2) (the notebooks' static figures) must not paste the kept 1x background under the 2x
    artists: after a step through the episodes it equals a full draw at that dpi, and back at 1x the 1x picture."""
    methods = {"pixels": PixelPrototype(), "pixels, again": PixelPrototype()}
    viewer = PredictionViewer(methods, glyphs[2], n_way=4, n_shot=1, n_query=2, seed=3)
    viewer.next.click()  # a 1x background is kept for the next redraws
    small = png_pixels(viewer.png())
    dpi = viewer.fig.get_dpi()
    big = png_pixels(viewer.png(scale=2))
    assert viewer.fig.get_dpi() == dpi  # the widget keeps its own size
    fresh = PredictionViewer(methods, glyphs[2], n_way=4, n_shot=1, n_query=2, seed=3)
    fresh.next.click()
    fresh.fig.set_dpi(2 * dpi)
    fresh._background = None  # the next png() draws the whole figure
    assert big.shape[0] == 2 * small.shape[0] and np.array_equal(big, png_pixels(fresh.png()))
    assert np.array_equal(png_pixels(viewer.png()), small)
    with pytest.raises(ValueError, match="scale=0 must be > 0"):
        viewer.png(scale=0)


def test_the_key_breaks_after_a_clause_never_leaving_a_word_alone():
    """The key wrapped at any space: with the Relation Network's longer name, "score)" stood on a line of its own."""
    from fslcourse.widgets.prediction_viewer import clause_lines

    key = ("query frame: green right, dashed red wrong; corner: predicted class (support frame colour); "
           "bar: its probability (Relation Network: its relation score)")
    assert clause_lines(key, 100) == ["query frame: green right, dashed red wrong; corner: predicted class (support frame colour);",
                                      "bar: its probability (Relation Network: its relation score)"]
    for width in range(20, 160):
        lines = clause_lines(key, width)
        assert " ".join(lines) == key  # nothing lost or added
        assert all(len(line) <= width for line in lines if " " in line)
        if width >= 60:  # every clause fits on a line: each line ends a clause
            assert all(line.endswith(";") for line in lines[:-1])
