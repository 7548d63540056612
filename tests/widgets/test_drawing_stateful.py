"""The drawing board under random clicks and strokes in any order (hypothesis stateful testing).

A student presses the buttons, draws and switches models in any order. After every step: no error but a
one-line ``ValueError`` reaches the caller (the buttons show even those in the status line), ``undo`` restores
exactly the drawings before the last stroke or clear, the support set shown is every non-empty drawing and
nothing else, and a prediction is the picked model's softmax on the drawings now on the board (never a stale
support set: the reference is computed from scratch).
"""
import copy

import torch
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fslcourse.methods import PixelPrototype, ProtoNet
from fslcourse.widgets.drawing import CANVAS_PX, MAX_CLASSES, MAX_DRAWINGS, QUERY, DrawingBoard

POINT = st.tuples(st.integers(0, CANVAS_PX), st.integers(0, CANVAS_PX))
STROKE = st.lists(POINT, min_size=1, max_size=4)


def drawings(strokes: dict) -> dict:
    """The drawings that hold strokes (an added canvas is not a drawing until something is drawn on it)."""
    return {t: s for t, s in strokes.items() if s}


class BoardMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.board = DrawingBoard({"net": ProtoNet(backbone_kwargs={"hidden": 4}).eval(), "pixel": PixelPrototype()},
                                  n_way=2)
        self.undo_stack = []  # the drawings before each undoable action (a stroke, a clear that cleared something)

    def _target(self, data):
        return data.draw(st.sampled_from(sorted((t for t in self.board.strokes if t != QUERY), key=str) + [QUERY]))

    def _finish_open_stroke(self) -> dict:
        """What the board does first to a stroke still open: it becomes an undoable stroke; returns the drawings then."""
        strokes = copy.deepcopy(self.board.strokes)
        if self.board._pen is not None:
            self.undo_stack.append(copy.deepcopy(strokes))
            target, points = self.board._pen
            strokes[target].append(list(points))
        return strokes

    @rule(data=st.data(), points=STROKE)
    def stroke(self, data, points):
        self.undo_stack.append(self._finish_open_stroke())
        self.board.add_stroke(self._target(data), points)

    @rule(data=st.data(), start=POINT, moves=st.lists(POINT, max_size=3), lift=st.booleans())
    def pen(self, data, start, moves, lift):
        target = self._target(data)
        self._finish_open_stroke()
        self.board.pen_down(target, *start)
        for x, y in moves:
            self.board.pen_move(target, x, y)
        if lift:
            self.undo_stack.append(copy.deepcopy(self.board.strokes))
            self.board.pen_up(target)

    @rule(data=st.data(), x=st.integers(0, CANVAS_PX), y=st.integers(0, CANVAS_PX))
    def stray_move_and_up(self, data, x, y):
        """A move or a lift over any canvas: extends and finishes only a stroke open on that canvas."""
        target = self._target(data)
        self.board.pen_move(target, x, y)
        if self.board._pen is not None and self.board._pen[0] == target:
            self.undo_stack.append(copy.deepcopy(self.board.strokes))
        self.board.pen_up(target)

    @rule()
    def undo(self):
        self._finish_open_stroke()
        self.board.undo_button.click()
        if self.undo_stack:
            assert drawings(self.board.strokes) == drawings(self.undo_stack.pop())  # canvases added since stay, empty
        else:
            assert "nothing to undo" in self.board.status.value

    @rule(data=st.data())
    def clear(self, data):
        which = data.draw(st.sampled_from(["all", "query", "class"]))
        before = self._finish_open_stroke()
        if which == "all":
            self.board.clear_all_button.click()
            cleared = list(before)
        elif which == "query":
            self.board._query_column.children[-1].children[0].click()
            cleared = [QUERY]
        else:
            k = data.draw(st.integers(0, self.board.n_classes - 1))
            self.board._columns[k].children[-1].children[0].click()
            cleared = [t for t in before if t != QUERY and t[0] == k]
        if any(before[t] for t in cleared):
            self.undo_stack.append(before)
        else:
            assert self.board.status.value == "nothing to clear"
        assert all(self.board.strokes[t] == [] for t in cleared)

    @rule()
    def add_class(self):
        n = self.board.n_classes
        self.board.add_class_button.click()
        assert self.board.n_classes == min(n + 1, MAX_CLASSES)
        if n == MAX_CLASSES:
            assert f"already has {MAX_CLASSES} classes" in self.board.status.value

    @rule(data=st.data())
    def add_drawing(self, data):
        k = data.draw(st.integers(0, self.board.n_classes - 1))
        n = len(self.board.drawings_of(k))
        self.board._columns[k].children[-1].children[1].click()
        assert len(self.board.drawings_of(k)) == min(n + 1, MAX_DRAWINGS)

    @precondition(lambda self: self.board._pen is None)  # a model switch mid-stroke: see the pen rule
    @rule(label=st.sampled_from(["net", "pixel"]))
    def pick_model(self, label):
        self.board.model.value = label

    @invariant()
    def shown_is_the_board_now(self):
        board, shown = self.board, self.board.shown
        drawn = sorted(t for t in board.strokes if t != QUERY and board.strokes[t])
        assert shown["targets"] == drawn and len(shown["support_x"]) == len(drawn)
        assert shown["classes"] == sorted({k for k, _ in drawn})
        assert shown["label"] == board.model.value
        if shown["probs"] is None:
            assert shown["message"] and (len(shown["classes"]) < 2 or not board.strokes[QUERY])
            return
        model = board._models[shown["label"]]
        with torch.no_grad():
            logits = model.predict(torch.stack([board.model_input(t) for t in drawn]), shown["support_y"],
                                   board.model_input(QUERY)[None])
        assert torch.allclose(shown["probs"], torch.softmax(logits.double(), 1)[0], atol=1e-5)
        assert shown["predicted"] == shown["classes"][int(shown["probs"].argmax())]
        bars = {k: bar.get_height() for k, bar in enumerate(board._bars)}
        assert all(abs(bars[k] - float(p)) < 1e-6 for k, p in zip(shown["classes"], shown["probs"]))

    @invariant()
    def no_error_in_the_status_line_but_limits(self):
        status = self.board.status.value
        assert "unexpected error" not in status and "cannot predict" not in status


BoardMachine.TestCase.settings = settings(max_examples=15, stateful_step_count=12, deadline=None, derandomize=True,
                                          phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported at once
                                          suppress_health_check=[HealthCheck.too_slow])
test_random_clicks_and_strokes = BoardMachine.TestCase
