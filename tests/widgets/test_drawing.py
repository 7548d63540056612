"""The drawing board: strokes in, the course's own model inputs and the model's own probabilities out.

References: ``load_image`` on the drawing saved as a PNG (the inputs), ``softmax(model.predict(...))`` on those
inputs (the probabilities), the argmin of ``cdist(embed(query), embed(support))`` (the nearest drawing), the
pixels before a stroke (undo); the mouse goes through ipycanvas's own event handler.
"""
import numpy as np
import pytest
import torch

from fslcourse.data import load_image
from fslcourse.methods import PixelPrototype, ProtoNet
from fslcourse.methods.maml import MAML
from fslcourse.predict import DEFAULT_METHOD
from fslcourse.widgets.drawing import (
    CANVAS_PX,
    MAX_CLASSES,
    MAX_DRAWINGS,
    QUERY,
    DrawingBoard,
    committed_methods,
    example_session,
    rasterize,
    redraw,
    session_figure,
)
from fslcourse.widgets.plotting import crowded_text

HORIZONTAL = [(20, 70), (120, 70)]
VERTICAL = [(70, 20), (70, 120)]
CIRCLE = [(70 + 40 * np.cos(a), 70 + 40 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 30)]


def small_models():
    torch.manual_seed(0)
    return {"net": ProtoNet(backbone_kwargs={"hidden": 8}).eval(), "pixel": PixelPrototype()}


def drawn_board(models=None, n_way=3) -> DrawingBoard:
    board = DrawingBoard(models or small_models(), n_way=n_way)
    for k, stroke in enumerate([HORIZONTAL, VERTICAL, CIRCLE][:n_way]):
        board.add_stroke((k, 0), stroke)
    return board


def test_a_drawing_saved_as_png_is_what_the_model_is_fed(tmp_path):
    board = drawn_board()
    board.add_stroke((0, 0), [(30, 30)])  # a dot: a second stroke of one point
    board.add_stroke(QUERY, [(25, 75), (115, 65)])
    for target in [(0, 0), (1, 0), (2, 0), QUERY]:
        png = tmp_path / f"{target}.png"
        board.drawing_image(target).save(png)
        assert torch.equal(load_image(png), board.model_input(target))
    x = board.model_input((0, 0))
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert x.mean() < 0.3 and x.max() > 0.5  # ink is 1, paper 0
    support_x, support_y, targets, classes = board.support()
    assert torch.equal(board.shown["support_x"], support_x) and targets == [(0, 0), (1, 0), (2, 0)]
    assert torch.equal(support_x[0], load_image(tmp_path / "(0, 0).png"))
    assert torch.equal(board.shown["query_x"][0], load_image(tmp_path / "query.png"))


def test_rasterize_draws_round_ended_strokes_of_the_pen_width():
    im = np.asarray(rasterize([[(20, 70), (120, 70)]], size=CANVAS_PX, pen=5))
    assert im.shape == (CANVAS_PX, CANVAS_PX) and im.dtype == np.uint8
    column = im[:, 70]
    assert (column == 0).sum() in (5, 6) and im[70, 17] == 0 and im[70, 10] == 255  # width 5, a round cap
    assert (np.asarray(rasterize([[(50, 50)]])) == 0).sum() > 10  # a single point is a dot


@pytest.mark.parametrize("label", ["net", "pixel"])
def test_probabilities_are_the_models_softmax_and_nearest_is_the_argmin(label):
    models = small_models()
    board = drawn_board(models)
    board.model.value = label
    board.add_stroke(QUERY, [(25, 75), (115, 65)])
    shown, model = board.shown, models[label]
    with torch.no_grad():
        logits = model.predict(shown["support_x"], shown["support_y"], shown["query_x"])
        ref = torch.softmax(logits.double(), 1)[0]
    assert torch.allclose(shown["probs"], ref, atol=1e-6)
    assert shown["predicted"] == shown["classes"][int(ref.argmax())]
    with torch.no_grad():
        embed = model.embed if label == "net" else (lambda x: x.flatten(1))  # (n, D)
        d = torch.cdist(embed(shown["query_x"]).double(), embed(shown["support_x"]).double())[0]
    assert shown["nearest"]["target"] == shown["targets"][int(d.argmin())]
    assert shown["nearest"]["distance"] == pytest.approx(float(d.min()), rel=1e-5)
    assert shown["nearest"]["space"] == ("embedding" if label == "net" else "pixel")
    heights = [bar.get_height() for bar in board._bars]  # the bar chart shows the same probabilities
    assert np.allclose(heights, ref.numpy()) and board._bars[shown["predicted"]].get_edgecolor()[:3] == (0, 0, 0)
    assert f"class {shown['predicted']}" in board.status.value and label in board.status.value


def test_the_prediction_changes_when_the_query_changes():
    board = drawn_board({"pixel": PixelPrototype()})
    board.add_stroke(QUERY, [(25, 72), (115, 68)])
    first = board.shown["probs"].clone()
    assert board.shown["predicted"] == 0 and board.shown["nearest"]["target"] == (0, 0)
    png_before = board.png()
    board.clear(QUERY)
    assert board.shown["probs"] is None and "draw a query" in board.status.value
    board.add_stroke(QUERY, [(72, 25), (68, 115)])
    assert board.shown["predicted"] == 1 and board.shown["nearest"]["target"] == (1, 0)
    assert not torch.allclose(first, board.shown["probs"]) and board.png() != png_before


def test_support_embeddings_are_kept_until_a_support_drawing_changes():
    models = small_models()
    net = models["net"]
    calls = []
    original = net.embed
    net.embed = lambda x: calls.append(len(x)) or original(x)
    board = drawn_board(models)
    calls.clear()
    board.add_stroke(QUERY, HORIZONTAL)
    assert calls == [3, 1]  # the support set once, then the query
    board.add_stroke(QUERY, [(30, 30)])
    board.undo()
    assert calls == [3, 1, 1, 1]  # the query only: the support embeddings are reused
    board.add_stroke((1, 0), [(100, 100)])
    assert calls[-2:] == [3, 1]  # a support drawing changed: embedded again


def test_undo_restores_the_previous_pixels_exactly():
    board = drawn_board()
    board.add_stroke(QUERY, HORIZONTAL)
    before = {t: (np.asarray(board.drawing_image(t)).copy(), board.model_input(t).clone()) for t in board.strokes}
    probs = board.shown["probs"].clone()
    board.add_stroke((2, 0), [(10, 10), (130, 130)])
    board.add_stroke(QUERY, VERTICAL)
    assert not np.array_equal(np.asarray(board.drawing_image(QUERY)), before[QUERY][0])
    board.undo()
    board.undo()
    for t, (pixels, x) in before.items():
        assert np.array_equal(np.asarray(board.drawing_image(t)), pixels) and torch.equal(board.model_input(t), x)
    assert torch.allclose(board.shown["probs"], probs, atol=1e-12)
    board.clear()  # clear all, then undo: everything is back
    assert not any(board.strokes.values()) and "at least two classes" in board.status.value
    board.undo()
    for t, (pixels, _) in before.items():
        assert np.array_equal(np.asarray(board.drawing_image(t)), pixels)
    assert torch.allclose(board.shown["probs"], probs, atol=1e-12)


def test_undo_with_nothing_to_undo_is_a_message_not_a_traceback():
    board = DrawingBoard(small_models())
    with pytest.raises(ValueError, match="nothing to undo"):
        board.undo()
    board.undo_button.click()  # the button shows it in the status line
    assert "nothing to undo" in board.status.value


def test_clear_a_class_a_drawing_or_the_query():
    board = drawn_board()
    board.add_drawing(0)
    board.add_stroke((0, 1), VERTICAL)
    board.add_stroke(QUERY, HORIZONTAL)
    board.clear(0)
    assert board.strokes[(0, 0)] == [] and board.strokes[(0, 1)] == [] and board.strokes[(1, 0)]
    assert board.shown["classes"] == [1, 2] and "class 0 not drawn yet" in board.status.value
    board.clear((1, 0))
    assert "at least two classes to predict (1 drawn so far)" in board.status.value and board.shown["probs"] is None
    board.clear(QUERY)
    assert board.strokes[QUERY] == []
    board.pen_down((2, 0), 10, 10)  # clearing while a stroke is open elsewhere finishes that stroke first
    board.pen_move((2, 0), 40, 40)
    board.clear(QUERY)
    assert board.strokes[(2, 0)][-1] == [(10.0, 10.0), (40.0, 40.0)] and "nothing to clear" in board.status.value
    board.undo()
    assert len(board.strokes[(2, 0)]) == 1
    with pytest.raises(ValueError, match="class 7 does not exist"):
        board.clear(7)
    with pytest.raises(ValueError, match="not a drawing of this board"):
        board.clear((0, 4))


def test_add_a_class_and_a_second_drawing_of_a_class():
    board = drawn_board(n_way=2)
    board.add_stroke(QUERY, CIRCLE)
    assert board.shown["classes"] == [0, 1]
    k = board.add_class()
    assert k == 2 and board.n_classes == 3 and board.strokes[(2, 0)] == [] and (2, 0) in board.canvases
    assert len(board.board.children) == 4  # three classes and the query
    assert board.shown["classes"] == [0, 1] and "class 2 not drawn yet: left out" in board.status.value
    assert [bar.get_height() for bar in board._bars][2] == 0 and len(board._bars) == 3  # a bar per board class
    board.add_stroke((2, 0), CIRCLE)
    assert board.shown["classes"] == [0, 1, 2] and board.shown["predicted"] == 2
    target = board.add_drawing(1)
    assert target == (1, 1) and board.drawings_of(1) == [(1, 0), (1, 1)]
    board.add_stroke(target, [(60, 20), (80, 120)])
    sx, sy, targets, _ = board.support()
    assert targets == [(0, 0), (1, 0), (1, 1), (2, 0)] and sy.tolist() == [0, 1, 1, 2] and len(sx) == 4
    assert board.shown["probs"].shape == (3,)
    # the buttons: "add a class" and a class's "+ drawing"
    board.add_class_button.click()
    assert board.n_classes == 4
    column = board.board.children[0]
    column.children[-1].children[1].click()  # class 0's "+ drawing"
    assert board.drawings_of(0) == [(0, 0), (0, 1)]


def test_limits_are_messages():
    board = DrawingBoard({"pixel": PixelPrototype()}, n_way=MAX_CLASSES)
    with pytest.raises(ValueError, match=f"already has {MAX_CLASSES} classes"):
        board.add_class()
    board.add_class_button.click()
    assert f"already has {MAX_CLASSES} classes" in board.status.value
    for _ in range(MAX_DRAWINGS - 1):
        board.add_drawing(0)
    with pytest.raises(ValueError, match=f"class 0 already has {MAX_DRAWINGS} drawings"):
        board.add_drawing(0)
    with pytest.raises(ValueError, match="n_way=0"):
        DrawingBoard({"pixel": PixelPrototype()}, n_way=0)
    # an empty stroke, a flat list, triples and a NaN point: one line each (a flat list was a TypeError)
    for bad in ([], [10, 20], [(1, 2, 3)], "ab"):
        with pytest.raises(ValueError, match=r"^points must be \(x, y\) pairs in canvas pixels"):
            board.add_stroke(QUERY, bad)
    board.add_stroke(QUERY, zip([20, 120], [70, 70]))  # pairs from zip(xs, ys) are points too
    with pytest.raises(ValueError, match="^points holds NaN or inf"):
        board.add_stroke(QUERY, [(10, 10), (float("nan"), 20)])


def test_impossible_states_are_one_line_messages():
    board = DrawingBoard(small_models())
    assert "at least two classes to predict (0 drawn so far)" in board.status.value
    board.add_stroke(QUERY, CIRCLE)  # a query alone predicts nothing
    assert board.shown["probs"] is None and "at least two classes" in board.status.value
    board.add_stroke((0, 0), HORIZONTAL)
    board.add_stroke((1, 0), VERTICAL)
    assert board.shown["probs"] is not None
    # a model with a fixed 5-way head cannot answer 3 classes: said in the status line
    board = drawn_board({"maml5": MAML(n_way=5, hidden=4).eval()})
    board.add_stroke(QUERY, CIRCLE)
    assert board.shown["probs"] is None and "fixed 5-way head and 3 classes are drawn" in board.status.value
    # a checkpoint that does not exist: the loading error, in the status line
    board = DrawingBoard(["protonet"], n_way=2, profile="full")  # not committed
    board.add_stroke((0, 0), HORIZONTAL)
    board.add_stroke((1, 0), VERTICAL)
    board.add_stroke(QUERY, VERTICAL)
    assert "cannot predict" in board.status.value and "no 'full' checkpoint" in board.status.value
    assert board.out.outputs == ()


def test_the_mouse_goes_through_the_same_api():
    board = drawn_board({"pixel": PixelPrototype()})
    canvas = board.canvases[QUERY]
    canvas._handle_frontend_event(None, {"event": "mouse_down", "x": 70, "y": 20}, None)
    for y in range(30, 121, 10):
        canvas._handle_frontend_event(None, {"event": "mouse_move", "x": 70, "y": y}, None)
    assert board.shown["probs"] is None  # nothing is predicted while the pen moves
    canvas._handle_frontend_event(None, {"event": "mouse_up", "x": 70, "y": 120}, None)
    assert board.strokes[QUERY] == [[(70.0, float(y)) for y in [20, *range(30, 121, 10)]]]
    assert board.shown["predicted"] == 1
    # leaving the canvas lifts the pen; moves over another canvas draw nothing there
    canvas._handle_frontend_event(None, {"event": "mouse_down", "x": 20, "y": 20}, None)
    board.canvases[(0, 0)]._handle_frontend_event(None, {"event": "mouse_move", "x": 50, "y": 50}, None)
    canvas._handle_frontend_event(None, {"event": "mouse_out", "x": 0, "y": 20}, None)
    assert board.strokes[QUERY][-1] == [(20.0, 20.0)] and board.strokes[(0, 0)] == [HORIZONTAL_F]
    # touch
    canvas._handle_frontend_event(None, {"event": "touch_start", "touches": [{"x": 5, "y": 5}]}, None)
    canvas._handle_frontend_event(None, {"event": "touch_move", "touches": [{"x": 9, "y": 9}]}, None)
    canvas._handle_frontend_event(None, {"event": "touch_end", "touches": []}, None)
    assert board.strokes[QUERY][-1] == [(5.0, 5.0), (9.0, 9.0)]


HORIZONTAL_F = [tuple(map(float, p)) for p in HORIZONTAL]


def test_the_default_board_offers_the_default_model_first():
    names = committed_methods()
    assert names[0] == DEFAULT_METHOD and len(set(names)) == len(names) and "pixel" in names
    board = DrawingBoard(n_way=2)
    assert list(board.model.options) == names and board.model.value == DEFAULT_METHOD
    board.add_stroke((0, 0), HORIZONTAL)
    board.add_stroke((1, 0), VERTICAL)
    board.add_stroke(QUERY, HORIZONTAL)
    from fslcourse.pretrained import default_recipe, pretrained

    assert default_recipe(DEFAULT_METHOD) == "lake"  # the course's best one-shot model, not the quick one
    ref = pretrained(DEFAULT_METHOD, profile="lake")
    loaded = board._models[DEFAULT_METHOD]
    assert loaded.checkpoint_source["file"] == "protonet-lake.pt", loaded.checkpoint_source
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), ref.state_dict().values()))
    with torch.no_grad():
        logits = ref.predict(board.shown["support_x"], board.shown["support_y"], board.shown["query_x"])
    assert torch.allclose(board.shown["probs"], torch.softmax(logits.double(), 1)[0], atol=1e-6)
    assert board._models["pixel"] is None  # the others load when picked
    board.model.value = "pixel"
    assert board._models["pixel"] is not None and board.shown["label"] == "pixel"


def test_example_session_and_its_figure():
    a = redraw([[(0.2, 0.2), (0.8, 0.8)]], seed=0)
    assert a == redraw([[(0.2, 0.2), (0.8, 0.8)]], seed=0) != redraw([[(0.2, 0.2), (0.8, 0.8)]], seed=1)
    board = example_session(DrawingBoard({"pixel": PixelPrototype()}, n_way=2), n_way=4, query_of=2, seed=0)
    assert board.n_classes == 4 and board.shown["predicted"] == 2
    fig = session_figure(board)
    assert len(fig.axes) == 2 * 5 + 2  # drawings and inputs of 4 classes and the query, nearest, probabilities
    heights = [p.get_height() for p in fig.axes[-1].patches]
    assert np.allclose(heights, board.shown["probs"].numpy())
    assert crowded_text(fig) == [], "the static figure's texts overlap or are cut off"
    assert len(fig.axes[-1].texts) == 0 and fig.axes[-1].get_ylim() == (0, 1)  # no values over the bars by default
    fig = session_figure(board, fontsize=10, values=True)  # notebook 02's static copy: larger text, values shown
    assert [t.get_text() for t in fig.axes[-1].texts] == [f"{p:.2f}" for p in board.shown["probs"].numpy()]
    assert fig.axes[-1].title.get_fontsize() == 10 and fig.axes[0].title.get_fontsize() == 10
    assert crowded_text(fig) == [], "the static figure's texts overlap or are cut off"
    with pytest.raises(ValueError, match="already holds drawings"):
        example_session(board)


class Broken(PixelPrototype):
    """A model that fails as a bug would (not an impossible state)."""

    def predict(self, support_x, support_y, query_x):
        raise RuntimeError("broken on purpose")


def test_an_unexpected_error_reaches_the_status_line_and_the_log():
    board = drawn_board({"broken": Broken()})
    board.pen_down(QUERY, 20, 20)
    with pytest.raises(RuntimeError, match="broken on purpose"):
        board._safely(board.pen_up, QUERY)  # what a mouse-up on the canvas runs
    assert "unexpected error:</b> RuntimeError: broken on purpose" in board.status.value


class ExtraColumn(PixelPrototype):
    """A model whose logits carry one column too many (e.g. a fake class left in)."""

    def predict(self, support_x, support_y, query_x):
        logits = super().predict(support_x, support_y, query_x)  # (n_query, n_way)
        return torch.cat([logits, logits[:, :1]], 1)  # (n_query, n_way + 1)


def test_logits_of_the_wrong_width_are_a_message():
    board = drawn_board({"extra": ExtraColumn()})
    board.add_stroke(QUERY, CIRCLE)
    assert "cannot predict" in board.status.value and "shape (1, 4) for 3 classes" in board.status.value


def _drawn_from_scratch(board: DrawingBoard, pixels) -> np.ndarray:
    board._background = None  # the next png() draws the whole figure
    board.render()
    return pixels(board.png())


def test_a_blitted_picture_equals_one_drawn_from_scratch(png_pixels):
    """A stroke redraws only the changing artists over the kept static pixels: the PNG is what a full draw gives."""
    board = drawn_board({"pixel": PixelPrototype()})
    board.add_stroke(QUERY, [(25, 72), (115, 68)])
    before = png_pixels(board.png())
    board.clear(QUERY)
    board.add_stroke(QUERY, [(72, 25), (68, 115)])  # another prediction, nearest drawing, bars and titles
    assert board._background is not None
    blitted = png_pixels(board.png())
    assert not np.array_equal(before, blitted) and np.array_equal(blitted, _drawn_from_scratch(board, png_pixels))
    board.add_class()  # a new shape: the static pixels are drawn again
    board.add_stroke((3, 0), [(20, 20), (120, 120)])
    assert np.array_equal(png_pixels(board.png()), _drawn_from_scratch(board, png_pixels))


class Scores(PixelPrototype):
    """A model whose outputs are relation-like scores in [0, 1] that do not sum to 1."""

    outputs = "scores"

    def predict(self, support_x, support_y, query_x):
        n_way = int(support_y.max()) + 1
        return torch.linspace(0.9, 0.1, n_way).expand(len(query_x), n_way).clone()


def test_relation_scores_are_never_written_as_percentages():
    """The status line said 'class 0 (90.0%)' for a relation score, and the bars' title read 'class probabilitys'."""
    board = drawn_board({"scores": Scores()})
    board.add_stroke(QUERY, CIRCLE)
    assert "(relation score 0.90)" in board.status.value and "%" not in board.status.value
    assert "class 0 relation score 0.90, class 1 relation score 0.50" in board.summary()
    assert board._axes[3].get_title() == "scores: relation scores per class"
    board = drawn_board({"pixel": PixelPrototype()})
    board.add_stroke(QUERY, CIRCLE)
    assert board._axes[3].get_title() == "pixel: class probabilities" and "%)" in board.status.value


def test_a_missing_checkpoint_is_loaded_once_it_exists(monkeypatch):
    """The board kept 'no checkpoint, create it with train ...' after the student had trained it."""
    import importlib

    pretrained = importlib.import_module("fslcourse.pretrained")
    real, trained = pretrained.pretrained, []

    def missing_until_trained(name, **kw):
        if not trained:
            raise FileNotFoundError(f"no 'quick' checkpoint for {name!r}; create it with `python -m fslcourse train`")
        return real("pixel", **kw)

    monkeypatch.setattr(pretrained, "pretrained", missing_until_trained)
    board = DrawingBoard(["pixel"], n_way=2)
    board.add_stroke((0, 0), HORIZONTAL)
    board.add_stroke((1, 0), VERTICAL)
    board.add_stroke(QUERY, VERTICAL)
    assert "cannot predict" in board.status.value and "no 'quick' checkpoint" in board.status.value
    trained.append(True)  # the student trains it in a terminal
    board.add_stroke(QUERY, HORIZONTAL)  # the next change asks again
    assert board.shown["probs"] is not None


def test_the_static_figure_shows_every_class_the_prediction_used():
    """A class whose first drawing was cleared, predicted from its second, was missing from the static figure."""
    board = drawn_board({"pixel": PixelPrototype()})
    board.add_stroke(board.add_drawing(1), VERTICAL)
    board.clear((1, 0))
    board.add_stroke(QUERY, VERTICAL)
    assert board.shown["classes"] == [0, 1, 2]
    fig = session_figure(board)
    titles = [ax.get_title() for ax in fig.axes[:8]]
    assert "class 1" in titles and len(fig.axes) == 2 * 4 + 2


def test_one_method_name_as_models_is_refused_not_read_letter_by_letter():
    """DrawingBoard(models="protonet") said "models ['p', 'r', 'o', ...] are not methods"."""
    from fslcourse.widgets.drawing import DrawingBoard

    with pytest.raises(ValueError, match=r"^models='protonet' is one name; pass a list of names, e.g. \['protonet'\]$"):
        DrawingBoard(models="protonet")


def test_a_point_off_the_canvas_or_not_a_number_is_refused_before_it_becomes_a_drawing():
    """pen_down(NaN) or a stroke off the canvas was kept: a class counted as drawn, with a blank model input."""
    board = DrawingBoard({"pixel": PixelPrototype()}, n_way=2)
    for x, y in [(float("nan"), 5), (5, float("inf")), ("a", 5)]:
        with pytest.raises(ValueError, match=r"^point \(.*\) is not a number; give canvas pixels"):
            board.pen_down((0, 0), x, y)
    for x, y in [(1000, 1000), (-50, 70), (70, CANVAS_PX + 10)]:
        with pytest.raises(ValueError, match=rf"^point \({x}, {y}\) is off the canvas; give canvas pixels .* 0 to {CANVAS_PX}"):
            board.pen_down((0, 0), x, y)
    with pytest.raises(ValueError, match=r"^point \(1000.0, 1000.0\) is off the canvas"):
        board.add_stroke((0, 0), [(1000, 1000), (2000, 1500)])
    board.pen_down((0, 0), 10, 10)
    with pytest.raises(ValueError, match=r"^point \(nan, 20\) is not a number"):
        board.pen_move((0, 0), float("nan"), 20)
    board.pen_move((0, 0), CANVAS_PX + 30, 20)  # a drag leaving the canvas (touch) goes on: the stroke has ink
    board.pen_up()
    assert board.strokes[(0, 0)] == [[(10.0, 10.0), (CANVAS_PX + 30.0, 20.0)]] and board.strokes[(1, 0)] == []
    board.add_stroke((1, 0), [(0, 0), (CANVAS_PX, CANVAS_PX)])  # the edges are on the canvas
    board.canvases[QUERY]._handle_frontend_event(None, {"event": "mouse_down", "x": -400, "y": 20}, None)
    assert "off the canvas" in board.status.value and board._pen is None  # the mouse: a message, not a traceback


def test_a_target_given_as_a_list_is_the_same_canvas_for_every_pen_call():
    """pen_down([0, 0]) opened a stroke that pen_move([0, 0]) and pen_up([0, 0]) ignored: the pen stayed down."""
    board = DrawingBoard({"pixel": PixelPrototype()}, n_way=2)
    board.pen_down([0, 0], 10, 10)
    board.pen_move([0, 0], 50, 50)
    board.pen_up([0, 0])
    assert board._pen is None and board.strokes[(0, 0)] == [[(10.0, 10.0), (50.0, 50.0)]]


def test_an_unknown_model_label_or_a_bool_class_is_refused():
    """predict('nosuch') was a KeyError once two classes were drawn (silent before); clear(True) meant class 1."""
    board = drawn_board({"pixel": PixelPrototype()}, n_way=2)
    board.add_stroke(QUERY, VERTICAL)
    with pytest.raises(ValueError, match=r"^label 'nosuch' is not a model of this board; use one of 'pixel'$"):
        board.predict("nosuch")
    with pytest.raises(ValueError, match="^class True does not exist"):
        board.clear(True)
    with pytest.raises(ValueError, match="^class True does not exist"):
        board.add_drawing(True)
    assert board.strokes[(1, 0)]
