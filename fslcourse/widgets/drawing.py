"""Draw your own characters: a support set and a query on small canvases, and a course model's live prediction.

Taught in ``notebooks/02_protonet.ipynb`` (and the finale of ``notebooks/11_benchmark.ipynb``).

Omniglot asks a model to learn a new character from one example, as people do. Here the characters are
the student's own: one canvas per class (``+ drawing`` adds a second drawing of a class), one for the
query. Every drawing becomes a model input through the course's own preprocessing
(:func:`fslcourse.data.preprocess_image`, the pipeline of :func:`~fslcourse.data.load_image`: 28×28,
ink = 1), and the picture under the canvases shows exactly those inputs, the class probabilities and the
support drawing nearest to the query. Nothing is predicted while the pen moves: the prediction runs when
the pen is lifted, with the loaded model and the support set's embeddings kept between predictions.

Strokes are kept as lists of points (canvas pixels) and drawn twice: on the ``ipycanvas`` canvas for the
eye, and with PIL into a white ``CANVAS_PX`` square for the model, so a drawing saved as a PNG
(:meth:`DrawingBoard.drawing_image`) and read back with ``load_image`` is exactly what the model is fed.
The mouse events and the tests go through the same Python API: :meth:`DrawingBoard.pen_down`,
:meth:`~DrawingBoard.pen_move`, :meth:`~DrawingBoard.pen_up`, :meth:`~DrawingBoard.add_stroke`,
:meth:`~DrawingBoard.undo`, :meth:`~DrawingBoard.clear`, :meth:`~DrawingBoard.add_class`,
:meth:`~DrawingBoard.add_drawing`.
"""
from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
import torch
from ipycanvas import Canvas, hold_canvas
from PIL import Image, ImageDraw

from ..config import get_device
from ..data import preprocess_image
from ..methods.base import METHODS, class_confidences, confidence_name, fixed_n_way, format_confidence  # its package registers every method
from .base import Explorer, button, check_whole
from .plotting import class_colour, text_points, tile

CANVAS_PX = 140  # a canvas's side in pixels: the drawing's resolution
PEN_PX = 5  # pen width: Omniglot's strokes are about 4 px wide in its 105-px drawings (140 / 105 * 4 ≈ 5)
MAX_CLASSES = 10
MAX_DRAWINGS = 5  # per class
QUERY = "query"
GREY = np.array([0.75, 0.75, 0.75])


def rasterize(strokes, size: int = CANVAS_PX, pen: int = PEN_PX) -> Image.Image:
    """Draw strokes with round ends and joints, black on a white ``size`` × ``size`` greyscale image.

    Args:
        strokes: a list of strokes, each a list of ``(x, y)`` canvas pixels (one point: a dot).
        size: the image's side in pixels.
        pen: the pen's width in pixels.

    Returns:
        A ``PIL.Image`` in mode ``"L"`` (0 = ink, 255 = paper), ready for :func:`~fslcourse.data.preprocess_image`.
    """
    im = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(im)
    r = pen / 2
    for stroke in strokes:
        points = [(float(x), float(y)) for x, y in stroke]
        if len(points) > 1:
            draw.line(points, fill=0, width=pen, joint="curve")
        for x, y in (points[0], points[-1]):  # round caps (and a dot for a single point)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=0)
    return im


def committed_methods(profile: str | None = None) -> list[str]:
    """The methods a board can pick: the default first, then every method with a committed checkpoint (or no weights).

    Args:
        profile: the recipe of the checkpoints; ``None``: each method's best
            (:func:`fslcourse.pretrained.default_recipe`: ProtoNet's ``lake``, else ``quick``).
    """
    from ..predict import DEFAULT_METHOD
    from ..pretrained import checkpoint_path, default_recipe

    names = [n for n, cls in sorted(METHODS.items())
             if not cls.trainable or checkpoint_path(n, profile or default_recipe(n)).exists()]
    return [DEFAULT_METHOD] + [n for n in names if n != DEFAULT_METHOD]


def _swatch(k: int) -> str:
    """HTML: a square in class ``k``'s colour, then ``class k`` in bold (readable for the pale colours too)."""
    r, g, b = (int(255 * c) for c in class_colour(k)[:3])
    return f"<span style='color:rgb({r},{g},{b})'>&#9632;</span>&nbsp;<b>class {k}</b>"


def _measure_title(measure: str) -> str:
    """The bar chart's title: "class probabilities", or "relation scores" (scores in [0, 1] that need not sum to 1)."""
    return "class probabilities" if measure == "probability" else f"{measure}s per class"


def _nearest(shown: dict) -> str:
    """The status line's and :meth:`DrawingBoard.summary`'s words for ``shown``'s nearest support drawing."""
    k, j = shown["nearest"]["target"]
    return f"nearest support drawing: class {k}, drawing {j + 1}"


def _device_of(model) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


class DrawingBoard(Explorer):
    """Draw a support set of invented characters and a query; see a course model's prediction on pen-up.

    Args:
        models: ``None`` (the default method, :data:`fslcourse.predict.DEFAULT_METHOD`, then every other
            committed model, loaded from its checkpoint when first picked), a list of method names, or
            ``{label: model}`` of ready :class:`~fslcourse.methods.base.FewShotClassifier` s.
        n_way: classes (empty canvases) to start with; :meth:`add_class` adds more, up to :data:`MAX_CLASSES`.
        profile: the recipe of the checkpoints to load (``quick``, ``full``, ``paper``, ...); ``None``: each
            method's best (:func:`fslcourse.pretrained.default_recipe`: ProtoNet's ``lake``, else ``quick``).
        device: where the models run (``None``: :func:`fslcourse.config.get_device`).

    Attributes:
        strokes: ``{target: [stroke, ...]}``, a stroke a list of ``(x, y)`` canvas pixels; a target is
            ``(k, j)`` (class ``k``'s drawing ``j``) or ``"query"``.
        canvases: ``{target: ipycanvas.Canvas}``.
        model: the model picker (a ``Dropdown`` of labels).
        shown: what the last :meth:`render` drew: ``label`` (the model), ``support_x`` ``(n, 1, 28, 28)``,
            ``support_y`` ``(n,)``, ``targets`` (the support drawings, in order), ``classes`` (the board class of
            each label), ``query_x`` ``(1, 1, 28, 28)`` or ``None``, ``probs`` ``(n_way,)`` or ``None``,
            ``predicted`` (a board class), ``nearest`` (``{"target", "index", "distance", "space"}``: the support
            drawing nearest the query, in the model's embedding or in pixels), ``left_out`` (classes not drawn
            yet) and ``message`` (why nothing is predicted, else ``None``).
    """

    error_title = "cannot predict"
    persistent_axes = True  # the panels are laid out once per board shape; a prediction only replaces pixels and bars

    def __init__(self, models=None, n_way: int = 3, profile: str | None = None, device=None):
        check_whole(n_way=(n_way, 1, MAX_CLASSES))  # NumPy integers too, as the other widgets
        self.profile, self.device = profile, get_device(device)
        if isinstance(models, dict):
            if not models:
                raise ValueError("models is an empty dict; give at least one {label: model}")
            self._models, self._names = dict(models), {}
        else:
            if isinstance(models, str):  # its letters would be read as the names
                raise ValueError(f"models={models!r} is one name; pass a list of names, e.g. [{models!r}]")
            names = committed_methods(profile) if models is None else [str(m) for m in models]
            if not names:
                raise ValueError("models is an empty list; give at least one method name")
            unknown = [n for n in names if n not in METHODS]
            if unknown:  # said now, not later in the status line
                raise ValueError(f"models {unknown} are not methods; use some of {', '.join(sorted(METHODS))}")
            self._models, self._names = {n: None for n in names}, {n: n for n in names}
        self._load_errors: dict[str, str] = {}
        self.strokes: dict = {}
        self.canvases: dict = {}
        self._history: list = []  # one [(target, its strokes before), ...] per undoable action (a stroke, a clear)
        self._pen = None  # (target, points) while the pen is down
        self._inputs: dict = {}  # target -> (1, 28, 28) model input, dropped when the drawing changes
        self._support_version = 0  # bumped whenever a support drawing changes
        self._support_z: dict = {}  # label -> (support version, targets, (n, D) support embeddings)
        self._columns: list = []
        self.model = W.Dropdown(options=list(self._models), description="model", layout=W.Layout(width="260px"))
        self.undo_button = button(lambda: self._safely(self.undo), description="undo", icon="undo",
                                  tooltip="undo the last stroke or clear")
        self.add_class_button = button(lambda: self._safely(self.add_class), description="add a class", icon="plus")
        self.clear_all_button = button(lambda: self._safely(self.clear), description="clear all", icon="trash")
        self.controls = {"model": self.model}
        self.board = W.HBox(layout=W.Layout(flex_flow="row wrap"))
        self._query_column = self._make_column(QUERY)
        for _ in range(n_way):
            self._new_class()
        self._rebuild()
        self._warm_up(self.model.value)
        super().__init__([[self.model, self.undo_button, self.add_class_button, self.clear_all_button],
                          self.board, self.status], figsize=(9.5, 2.2))

    def _warm_up(self, label: str) -> None:
        """Load the model now and run it once on blank images, so the first pen-up does not pay for either."""
        try:
            model = self._model(label)
        except ValueError:
            return  # the reason shows in the status line when a prediction is asked for
        n_way = fixed_n_way(model) or 2
        blank = torch.zeros(n_way + 1, 1, 28, 28, device=_device_of(model))  # (n_way + 1, 1, 28, 28)
        try:
            with torch.set_grad_enabled(getattr(model, "needs_grad_at_test", False)):
                model.predict(blank[:n_way], torch.arange(n_way, device=blank.device), blank[n_way:])
        except Exception:  # noqa: BLE001 (only a warm-up: a real prediction shows the error in the status line)
            return

    # ------------------------------------------------------------------ the board: classes, drawings, canvases

    @property
    def n_classes(self) -> int:
        """How many classes the board has (drawn or not)."""
        return len(self._columns)

    def drawings_of(self, k: int) -> list:
        """The targets ``(k, j)`` of class ``k``'s drawings."""
        self._check_class(k)
        return sorted(t for t in self.strokes if t != QUERY and t[0] == k)

    def _check_class(self, k) -> int:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 0 <= k < self.n_classes:
            raise ValueError(f"class {k!r} does not exist; the board has classes 0 to {self.n_classes - 1}")
        return int(k)

    @staticmethod
    def _same_target(target):
        """``target`` as the board keys it: a class's drawing given as a list ``[k, j]`` is the tuple ``(k, j)``."""
        return tuple(target) if isinstance(target, list) else target

    def _check_target(self, target):
        target = QUERY if target == QUERY else tuple(target) if isinstance(target, (tuple, list)) else target
        if target not in self.strokes:
            raise ValueError(f"target {target!r} is not a drawing of this board; use 'query' or (class, drawing), "
                             f"e.g. (0, 0)")
        return target

    def _new_canvas(self, target) -> Canvas:
        canvas = Canvas(width=CANVAS_PX, height=CANVAS_PX,
                        layout=W.Layout(width=f"{CANVAS_PX}px", height=f"{CANVAS_PX}px", border="1px solid #888",
                                        margin="2px"))
        canvas.on_mouse_down(lambda x, y: self._safely(self.pen_down, target, x, y))
        canvas.on_mouse_move(lambda x, y: self.pen_move(target, x, y))
        canvas.on_mouse_up(lambda x, y: self._safely(self.pen_up, target))
        canvas.on_mouse_out(lambda x, y: self._safely(self.pen_up, target))
        canvas.on_touch_start(lambda points: self._safely(self.pen_down, target, *points[0]))
        canvas.on_touch_move(lambda points: self.pen_move(target, *points[0]))
        canvas.on_touch_end(lambda points: self._safely(self.pen_up, target))
        canvas.on_client_ready(lambda: self._paint(target))
        self.strokes[target] = []
        self.canvases[target] = canvas
        self._paint(target)
        return canvas

    def _make_column(self, key) -> W.VBox:
        """A column of the board: a label, the canvases, and its buttons (``key``: a class ``k`` or ``"query"``)."""
        if key == QUERY:
            clear = button(lambda: self._safely(self.clear, QUERY), description="clear", icon="eraser",
                           layout=W.Layout(width="80px"))
            return W.VBox([W.HTML("<b>query</b> (draw here)"), self._new_canvas(QUERY), W.HBox([clear])])
        clear = button(lambda: self._safely(self.clear, key), description="clear", icon="eraser",
                       layout=W.Layout(width="80px"), tooltip=f"clear class {key}'s drawings")
        more = button(lambda: self._safely(self.add_drawing, key), description="drawing", icon="plus",
                      layout=W.Layout(width="90px"), tooltip=f"add another drawing of class {key}")
        return W.VBox([W.HTML(_swatch(key)), self._new_canvas((key, 0)), W.HBox([clear, more])])

    def _new_class(self) -> None:
        self._columns.append(self._make_column(len(self._columns)))

    def _rebuild(self) -> None:
        self.board.children = [*self._columns, self._query_column]

    def add_class(self) -> int:
        """Add a class with one empty canvas; returns its index.

        Raises:
            ValueError: the board already has :data:`MAX_CLASSES` classes.
        """
        if self.n_classes >= MAX_CLASSES:
            raise ValueError(f"the board already has {MAX_CLASSES} classes, the most it holds; clear one and draw "
                             "a new character in it")
        self._new_class()
        self._rebuild()
        self.update()
        return self.n_classes - 1

    def add_drawing(self, k: int) -> tuple[int, int]:
        """Add an empty canvas for another drawing of class ``k``; returns its target ``(k, j)``.

        Raises:
            ValueError: ``k`` is not a class, or it already has :data:`MAX_DRAWINGS` drawings.
        """
        k = self._check_class(k)
        j = len(self.drawings_of(k))
        if j >= MAX_DRAWINGS:
            raise ValueError(f"class {k} already has {MAX_DRAWINGS} drawings, the most a class holds; "
                             "clear it or undo a stroke instead")
        column = self._columns[k]
        column.children = [*column.children[:-1], self._new_canvas((k, j)), column.children[-1]]
        self.update()
        return (k, j)

    # ------------------------------------------------------------------ drawing: the API the mouse and the tests use

    @staticmethod
    def _point(x, y, on_canvas: bool) -> tuple[float, float]:
        """``(x, y)`` as floats; a point that is not a finite number (or, if ``on_canvas``, off the canvas) is refused.

        A stroke starts on the canvas, so it leaves ink there; it may then leave the canvas (a touch drag does).
        """
        try:
            point = (float(x), float(y))
        except (TypeError, ValueError):
            point = (np.nan, np.nan)
        if not np.isfinite(point).all():
            raise ValueError(f"point ({x!r}, {y!r}) is not a number; give canvas pixels (x, y) from 0 to {CANVAS_PX}")
        if on_canvas and not all(0 <= v <= CANVAS_PX for v in point):
            raise ValueError(f"point ({x!r}, {y!r}) is off the canvas; give canvas pixels (x, y) from 0 to {CANVAS_PX}")
        return point

    def pen_down(self, target, x: float, y: float) -> None:
        """Start a stroke on ``target`` at canvas pixel ``(x, y)`` (a stroke still open elsewhere is finished first).

        Raises:
            ValueError: ``target`` is not a drawing of the board, or ``(x, y)`` is not a number or off the canvas.
        """
        target = self._check_target(target)
        x, y = self._point(x, y, on_canvas=True)
        if self._pen is not None:
            self.pen_up()
        self._pen = (target, [(x, y)])
        canvas = self.canvases[target]
        canvas.fill_style = "black"
        canvas.fill_circle(float(x), float(y), PEN_PX / 2)

    def pen_move(self, target, x: float, y: float) -> None:
        """Extend the open stroke on ``target`` to ``(x, y)`` (ignored when the pen is up or on another canvas)."""
        target = self._same_target(target)
        if self._pen is None or self._pen[0] != target:
            return
        x, y = self._point(x, y, on_canvas=False)
        points = self._pen[1]
        x0, y0 = points[-1]
        points.append((x, y))
        self.canvases[target].stroke_line(x0, y0, x, y)

    def pen_up(self, target=None) -> None:
        """Finish the open stroke (if any) and predict again; ``target``, when given, must be the stroke's canvas."""
        if self._pen is None or (target is not None and self._pen[0] != self._same_target(target)):
            return
        target, points = self._pen
        self._pen = None
        self._history.append([(target, list(self.strokes[target]))])
        self.strokes[target] = [*self.strokes[target], points]
        self._changed([target], repaint=False)  # the canvas already shows the stroke, drawn as the pen moved

    def add_stroke(self, target, points) -> None:
        """Draw a whole stroke: pen down at ``points[0]``, through the others, pen up (which predicts).

        Args:
            target: ``"query"`` or ``(class, drawing)``.
            points: ``(n, 2)`` canvas pixels ``(x, y)``, ``n >= 1``; the first on the canvas (0 to ``CANVAS_PX``).
        """
        try:
            points = np.asarray(list(points), dtype=float)  # list(): zip(xs, ys) and generators are pairs too
        except (TypeError, ValueError):
            points = None
        if points is None or points.ndim != 2 or points.shape[1] != 2 or not len(points):
            raise ValueError("points must be (x, y) pairs in canvas pixels, e.g. [(20, 70), (120, 70)]: a list of "
                             "at least one pair")
        if not np.isfinite(points).all():
            raise ValueError("points holds NaN or inf; give finite canvas pixels (x, y)")
        points = [tuple(p) for p in points.tolist()]
        self.pen_down(target, *points[0])
        target = self._check_target(target)
        for x, y in points[1:]:
            self.pen_move(target, x, y)
        self.pen_up(target)

    def undo(self) -> None:
        """Take back the last stroke, or the last clear, restoring the drawings exactly.

        Raises:
            ValueError: there is nothing to undo.
        """
        if self._pen is not None:
            self.pen_up()
        if not self._history:
            raise ValueError("nothing to undo: draw a stroke first")
        before = self._history.pop()
        for target, strokes in before:
            self.strokes[target] = strokes
        self._changed([t for t, _ in before])

    def clear(self, target=None) -> None:
        """Clear drawings (undo brings them back).

        Args:
            target: ``None`` (every drawing), ``"query"``, a class ``k`` (all of its drawings) or ``(k, j)``.
        """
        if target is None:
            targets = list(self.strokes)
        elif isinstance(target, (int, np.integer)):
            targets = self.drawings_of(target)
        else:
            targets = [self._check_target(target)]
        if self._pen is not None:  # a stroke still being drawn is finished first (so undo can bring it back)
            self.pen_up()
        before = [(t, self.strokes[t]) for t in targets if self.strokes[t]]
        if not before:
            self.status.value = "nothing to clear"
            return
        self._history.append(before)
        for t, _ in before:
            self.strokes[t] = []
        self._changed([t for t, _ in before])

    def _changed(self, targets, repaint: bool = True) -> None:
        """Forget what was computed from ``targets``' drawings, repaint their canvases (if ``repaint``) and predict again."""
        for t in targets:
            self._inputs.pop(t, None)
            if repaint:
                self._paint(t)
            if t != QUERY:
                self._support_version += 1
        self.update()

    def _paint(self, target) -> None:
        """Draw ``target``'s strokes on its canvas again, from scratch (white paper, black round-ended strokes)."""
        canvas = self.canvases[target]
        with hold_canvas():
            canvas.clear()
            canvas.fill_style = "white"
            canvas.fill_rect(0, 0, CANVAS_PX, CANVAS_PX)
            canvas.stroke_style = "black"
            canvas.fill_style = "black"
            canvas.line_width = PEN_PX
            canvas.line_cap = "round"
            canvas.line_join = "round"
            for stroke in self.strokes[target]:
                if len(stroke) > 1:
                    canvas.stroke_lines(stroke)
                canvas.fill_circle(*stroke[0], PEN_PX / 2)

    def _safely(self, action, *args) -> None:
        """Run a button's or the mouse's action; an impossible one is a one-line message in the status line.

        Any other error is shown there too (a button has no cell to show a traceback in), then raised for the log.
        """
        try:
            action(*args)
        except ValueError as err:
            self.status.value = f"<b style='color:#b00'>{html.escape(str(err))}</b>"
        except Exception as err:
            self.status.value = f"<b style='color:#b00'>unexpected error:</b> {html.escape(f'{type(err).__name__}: {err}')}"
            raise

    # ------------------------------------------------------------------ what the model sees

    def drawing_image(self, target) -> Image.Image:
        """``target``'s drawing as the model's source picture: a white ``CANVAS_PX`` square, black strokes (mode ``"L"``)."""
        return rasterize(self.strokes[self._check_target(target)])

    def model_input(self, target) -> torch.Tensor:
        """``target``'s model input ``(1, 28, 28)``, ink = 1: :func:`~fslcourse.data.preprocess_image` of :meth:`drawing_image`."""
        target = self._check_target(target)
        if target not in self._inputs:
            self._inputs[target] = preprocess_image(self.drawing_image(target))
        return self._inputs[target]

    def support(self) -> tuple[torch.Tensor, torch.Tensor, list, list]:
        """The drawn support set: classes with no drawing yet are left out, and the labels renumbered.

        Returns:
            ``(support_x (n, 1, 28, 28), support_y (n,), targets, classes)``: ``targets[i]`` is drawing ``i``'s
            ``(k, j)``; label ``c`` is board class ``classes[c]``.
        """
        drawn = [t for t in sorted(t for t in self.strokes if t != QUERY) if self.strokes[t]]
        classes = sorted({k for k, _ in drawn})
        if not drawn:
            return torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long), [], []
        support_x = torch.stack([self.model_input(t) for t in drawn])  # (n, 1, 28, 28)
        support_y = torch.tensor([classes.index(k) for k, _ in drawn])  # (n,)
        return support_x, support_y, drawn, classes

    def _model(self, label: str):
        """The model picked as ``label``, loaded (once) from its checkpoint when first needed."""
        if self._models[label] is None:
            if label in self._load_errors:
                raise ValueError(self._load_errors[label])
            from ..pretrained import default_recipe, pretrained

            name = self._names[label]
            try:
                self._models[label] = pretrained(name, profile=self.profile or default_recipe(name),
                                                 device=self.device).eval()
            except FileNotFoundError as err:  # not remembered: once trained, picking the model again loads it
                raise ValueError(str(err).splitlines()[0]) from None
            except ValueError as err:  # a file that cannot serve this board stays so
                self._load_errors[label] = str(err).splitlines()[0]
                raise ValueError(self._load_errors[label]) from None
        return self._models[label]

    def predict(self, label: str | None = None) -> dict:
        """Class probabilities and the nearest support drawing for the current drawings, or why there are none.

        Args:
            label: the model (a picker label); ``None``: the one picked.

        Returns:
            :attr:`shown`'s dictionary (see the class docstring).
        """
        label = self.model.value if label is None else label
        if label not in self._models:
            raise ValueError(f"label {label!r} is not a model of this board; use one of "
                             f"{', '.join(map(repr, self._models))}")
        support_x, support_y, targets, classes = self.support()
        query = self.strokes[QUERY]
        shown = {"label": label, "support_x": support_x, "support_y": support_y, "targets": targets,
                 "classes": classes, "query_x": None, "probs": None, "predicted": None, "nearest": None,
                 "message": None}
        if query:
            shown["query_x"] = self.model_input(QUERY).unsqueeze(0)  # (1, 1, 28, 28)
        empty = [k for k in range(self.n_classes) if k not in classes]
        if len(classes) < 2:
            shown["message"] = (f"draw at least two classes to predict ({len(classes)} drawn so far): one character "
                                "of your own invention per box")
            return shown
        if not query:
            shown["message"] = "now draw a query in the last box: a new drawing of one of your characters"
            return shown
        model = self._model(label)
        fixed = fixed_n_way(model)
        if fixed is not None and fixed != len(classes):
            shown["message"] = (f"{label} has a fixed {fixed}-way head and {len(classes)} classes are drawn; draw "
                                f"{fixed} classes, or pick another model")
            return shown
        probs, distances, space = self._classify(model, label, support_x, support_y, shown["query_x"], targets)
        i = int(distances.argmin())
        shown.update(probs=probs, predicted=classes[int(probs.argmax())], measure=confidence_name(model),
                     nearest={"target": targets[i], "index": i, "distance": float(distances[i]), "space": space},
                     left_out=empty)
        return shown

    def _classify(self, model, label, support_x, support_y, query_x, targets):
        """``(probs (n_way,), distances (n_support,), space)``: softmax of the logits and query-to-support distances.

        A method with an embedding seam (``embed`` and ``classify_embeddings``) and test-time batch norm from
        stored statistics embeds the support set once per change of the support drawings; the others run
        ``predict`` whole. Distances are in the model's embedding when it has one, else in pixels.
        """
        device = _device_of(model)
        support_x, support_y, query_x = support_x.to(device), support_y.to(device), query_x.to(device)
        per_image = getattr(model, "test_batch_norm", "running") != "batch"  # an image's embedding ignores the batch
        embeds = per_image and callable(getattr(model, "embed", None))
        z_s = z_q = None
        if embeds:
            cached = self._support_z.get(label)
            if cached is None or cached[:2] != (self._support_version, targets):
                with torch.no_grad():
                    cached = (self._support_version, list(targets), model.embed(support_x))  # (n, D)
                self._support_z[label] = cached
            z_s = cached[2]
            with torch.no_grad():
                z_q = model.embed(query_x)  # (1, D)
        with torch.set_grad_enabled(getattr(model, "needs_grad_at_test", False)):
            if embeds and model.has_embedding_seam:
                logits = model.classify_embeddings(z_s, support_y, z_q)  # (1, n_way)
            else:
                logits = model.predict(support_x, support_y, query_x)  # (1, n_way)
        n_way = int(support_y.max()) + 1
        if tuple(logits.shape) != (1, n_way):
            raise ValueError(f"{label} returned logits of shape {tuple(logits.shape)} for {n_way} classes and one query; "
                             f"the board needs (1, {n_way}): pick another model")
        probs = class_confidences(model, logits.detach().cpu().double())[0]  # (n_way,): probabilities, or scores
        if embeds:
            distances, space = torch.cdist(z_q.cpu().double(), z_s.cpu().double())[0], "embedding"  # (n_support,)
        else:
            distances = torch.cdist(query_x.flatten(1).cpu().double(), support_x.flatten(1).cpu().double())[0]  # (n_support,)
            space = "pixel"
        return probs, distances, space

    # ------------------------------------------------------------------ Explorer: compute, draw, describe

    def compute(self) -> dict:
        """:meth:`predict` with the picked model."""
        return self.predict()

    def _layout(self, fig, n_cols: int, n_rows: int) -> list:
        """The panels for a board of this shape: support inputs, query input, nearest support drawing, probabilities.

        Made by :meth:`~fslcourse.widgets.base.Explorer.layout` (on an empty figure) when the shape changes.
        """
        height = 2.6 + 0.6 * (n_rows - 1)
        fig.set_size_inches(6.0 + 0.75 * max(n_cols, 2), height)  # room for every class and drawing
        # margins in pixels: two lines of titles above, tick labels and a two-line label below
        gs = fig.add_gridspec(1, 4, width_ratios=[0.75 * max(n_cols, 2), 1.3, 1.3, 2.6], wspace=0.25, left=0.01,
                              right=0.99, top=1 - 34 / (height * fig.dpi), bottom=38 / (height * fig.dpi))
        axes = [fig.add_subplot(gs[0, i]) for i in range(4)]
        h = 28 + 6
        self._support_im = axes[0].imshow(np.ones((n_rows * h, n_cols * h, 3)), interpolation="nearest")
        axes[0].set_title("support\nwhat the model sees (28×28)", fontsize=text_points(self.fig), loc="left")
        axes[0].set_xticks([h * (k + 0.5) for k in range(n_cols)], [f"class {k}" for k in range(n_cols)], fontsize=text_points(self.fig))
        axes[0].set_yticks([])
        self._query_im = axes[1].imshow(np.ones((h, h, 3)), interpolation="nearest")
        self._nearest_im = axes[2].imshow(np.ones((h, h, 3)), interpolation="nearest")
        for ax in axes[1:3]:
            ax.set(xticks=[], yticks=[])
        # under the nearest drawing: the space and the distance (a text of its own: an axis label is drawn with its
        # axis, so it could not be redrawn alone; see dynamic_artists)
        self._nearest_text = axes[2].annotate("", (0.5, 0), xycoords="axes fraction", xytext=(0, -3),
                                              textcoords="offset points", ha="center", va="top",
                                              fontsize=text_points(self.fig))
        # one bar per board class, made once: a prediction only sets heights and outlines (few artists, fast)
        self._bars = axes[3].bar(range(n_cols), np.zeros(n_cols), color=[class_colour(k) for k in range(n_cols)],
                                 linewidth=1.2)
        axes[3].set_xticks(range(n_cols), [str(k) for k in range(n_cols)], fontsize=text_points(self.fig))
        axes[3].set_xlabel("class", fontsize=text_points(self.fig), labelpad=1)
        axes[3].set_ylim(0, 1)
        axes[3].set_yticks([0, 0.5, 1], ["0", "0.5", "1"], fontsize=text_points(self.fig))
        self._axes = axes
        return axes

    def draw(self, fig, shown: dict) -> None:
        """Fill the panels: every drawing's model input framed in its class colour, the query's, the nearest, the bars."""
        n_cols = self.n_classes
        n_rows = max(len(self.drawings_of(k)) for k in range(n_cols))
        (ax_s, ax_q, ax_n, ax_p), _ = self.layout((n_cols, n_rows), lambda fig: self._layout(fig, n_cols, n_rows))
        images = np.zeros((n_rows * n_cols, 28, 28))
        frames = np.tile(GREY, (n_rows * n_cols, 1))
        for k in range(n_cols):
            for _, j in self.drawings_of(k):
                i = j * n_cols + k  # row j (the drawing), column k (the class), as on the board
                if self.strokes[(k, j)]:
                    images[i] = self.model_input((k, j))[0].numpy()
                    frames[i] = class_colour(k)[:3]
        self._support_im.set_data(tile(images, frames, None, n_rows, n_cols))
        query = shown["query_x"]
        predicted, nearest = shown["predicted"], shown["nearest"]
        q_frame = class_colour(predicted)[:3] if predicted is not None else GREY
        q_image = query[0].numpy() if query is not None else np.zeros((1, 28, 28))
        self._query_im.set_data(tile(q_image, np.array([q_frame]), None, 1, 1))
        ax_q.set_title("query" + (f"\nclass {predicted}?" if predicted is not None else "\n"), fontsize=text_points(self.fig))
        if nearest is not None:
            k, j = nearest["target"]
            self._nearest_im.set_data(tile(self.model_input((k, j)).numpy(), np.array([class_colour(k)[:3]]), None, 1, 1))
            ax_n.set_title(f"nearest support\nclass {k}", fontsize=text_points(self.fig))
            self._nearest_text.set_text(f"{nearest['space']}\ndistance {nearest['distance']:.2f}")
        else:
            self._nearest_im.set_data(np.ones((34, 34, 3)))
            ax_n.set_title("nearest support\n", fontsize=text_points(self.fig))
            self._nearest_text.set_text("")
        probs = dict(zip(shown["classes"], shown["probs"].tolist())) if shown["probs"] is not None else {}
        for k, bar in enumerate(self._bars):
            bar.set_height(probs.get(k, 0.0))
            bar.set_edgecolor("black" if k == predicted else "none")
        ax_p.set_title(f"{shown['label']}: {_measure_title(shown.get('measure', 'probability'))}" if probs
                       else "class probabilities (none yet)",
                       fontsize=text_points(self.fig))

    def dynamic_artists(self) -> list | None:
        """The pictures, the bars and the titles that name a class: what a new stroke can change."""
        if not hasattr(self, "_axes"):
            return None
        _, ax_q, ax_n, ax_p = self._axes
        return [self._support_im, self._query_im, self._nearest_im, *self._bars, ax_q.title, ax_n.title,
                self._nearest_text, ax_p.title]

    def describe(self, shown: dict) -> str:
        """The status line: the prediction and the nearest drawing, or what to draw next."""
        if shown["message"]:
            return shown["message"]
        k, p = shown["predicted"], float(shown["probs"].max())
        text = f"<b>{shown['label']}</b>: the query is {_swatch(k)} ({format_confidence(p, shown.get('measure'))}); {_nearest(shown)}"
        if shown.get("left_out"):
            left = shown["left_out"]
            text += f" ({'class' if len(left) == 1 else 'classes'} {', '.join(map(str, left))} not drawn yet: left out)"
        return text

    def summary(self) -> str:
        """The current prediction in one plain line (for printing in a notebook)."""
        shown = self.shown
        if not shown or shown["message"]:
            return shown.get("message") or "nothing shown"
        probs = ", ".join(f"class {k} {format_confidence(float(p), shown.get('measure'))}"
                          for k, p in zip(shown["classes"], shown["probs"]))
        return f"{shown['label']}: query -> class {shown['predicted']} ({probs}); {_nearest(shown)}"


# ---------------------------------------------------------------------- a scripted session (the static figure)

# Five invented characters, strokes in units of the canvas (x right, y down, 0 to 1).
EXAMPLE_CHARACTERS = {
    "fork": [[(0.5, 0.85), (0.5, 0.42)], [(0.28, 0.18), (0.5, 0.42), (0.72, 0.18)]],
    "spiral": [[(0.5 + r * np.cos(a), 0.5 + r * np.sin(a)) for a, r in zip(np.linspace(0, 4 * np.pi, 40),
                                                                           np.linspace(0.36, 0.04, 40))]],
    "zigzag": [[(0.15, 0.3), (0.38, 0.62), (0.6, 0.3), (0.83, 0.62)], [(0.5, 0.84)]],
    "flag": [[(0.3, 0.88), (0.3, 0.15), (0.75, 0.28), (0.3, 0.42)], [(0.45, 0.65), (0.78, 0.65)]],
    "arch": [[(0.5 + 0.3 * np.cos(a), 0.55 - 0.3 * np.sin(a)) for a in np.linspace(0, np.pi, 20)],
             [(0.15, 0.78), (0.85, 0.78)]],
}


def _densify(stroke, step: float = 0.02) -> np.ndarray:
    """``(m, 2)`` points along the polyline ``stroke`` at most ``step`` apart (so a tremor bends its lines)."""
    pts = np.asarray(stroke, dtype=float).reshape(-1, 2)  # (n, 2)
    out = [pts[:1]]
    for a, b in zip(pts[:-1], pts[1:]):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / step)))
        out.append(a + (b - a) * np.linspace(0, 1, n + 1)[1:, None])  # (n, 2)
    return np.concatenate(out)  # (m, 2)


def redraw(strokes, seed: int, wobble: float = 0.025, angle: float = 10.0, scale: float = 0.12) -> list:
    """Another drawing of the same character: a random rotation, scale and shift of ``strokes``, and wobbly corners.

    Args:
        strokes: strokes in canvas units (``(x, y)`` in ``[0, 1]``).
        seed: seeds the drawing's randomness (``numpy.random.default_rng``).
        wobble: standard deviation of each stroke point's jitter, in canvas units.
        angle: the largest rotation, in degrees; ``scale``: the largest relative change of size.

    Returns:
        The new strokes, in canvas units, with points at most 0.02 apart.
    """
    rng = np.random.default_rng(seed)
    t = np.deg2rad(rng.uniform(-angle, angle))
    s = 1 + rng.uniform(-scale, scale)
    shift = rng.uniform(-0.05, 0.05, size=2)
    rot = s * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    out = []
    for stroke in strokes:
        pts = np.asarray(stroke, dtype=float).reshape(-1, 2)  # (n, 2)
        pts = (pts - 0.5) @ rot.T + 0.5 + shift + rng.normal(0, wobble, size=pts.shape)
        out.append([tuple(p) for p in np.clip(_densify(pts), 0.03, 0.97)])
    return out


def example_session(board: DrawingBoard, n_way: int = 4, query_of: int = 2, seed: int = 0) -> DrawingBoard:
    """Script a session on an empty ``board``: ``n_way`` of :data:`EXAMPLE_CHARACTERS`, then a query.

    Class ``k`` is the ``k``-th character drawn once; the query is :func:`redraw` of character ``query_of``
    (seeded by ``seed``), so the right answer is class ``query_of``.

    Returns:
        ``board``, with its prediction in ``board.shown``.
    """
    if not 2 <= n_way <= len(EXAMPLE_CHARACTERS):
        raise ValueError(f"n_way={n_way}; the example has 2 to {len(EXAMPLE_CHARACTERS)} characters")
    if not 0 <= query_of < n_way:
        raise ValueError(f"query_of={query_of} is not one of the {n_way} classes; use 0 to {n_way - 1}")
    if any(board.strokes.values()):
        raise ValueError("the board already holds drawings; give a new DrawingBoard (or call board.clear() first)")
    while board.n_classes < n_way:
        board.add_class()
    characters = list(EXAMPLE_CHARACTERS.values())
    strokes = [((k, 0), stroke) for k in range(n_way) for stroke in characters[k]]
    for target, stroke in strokes + [(QUERY, stroke) for stroke in redraw(characters[query_of], seed)]:
        board.add_stroke(target, [(CANVAS_PX * x, CANVAS_PX * y) for x, y in stroke])
    return board


def session_figure(board: DrawingBoard, figsize: tuple[float, float] | None = None, fontsize: float | None = None,
                   values: bool = False):
    """A pyplot figure of a board's session: the drawings, the model inputs beside them, the probabilities, the nearest.

    Top row: each class's first drawing and the query as drawn (``CANVAS_PX`` square); bottom row: what the
    model sees (28×28, ink = 1); right: the picked model's class probabilities and the nearest support drawing.

    Args:
        fontsize: the texts' size in points (default: the smallest readable size at the figure's dpi); a static
            figure in a notebook reads better at 10.
        values: print each bar's value above it (a probability of 1.0 next to three of 0.0 is one bar otherwise).
    """
    import matplotlib.pyplot as plt

    shown = board.shown
    # each class's first drawing that has strokes (one may have been cleared); classes with none are left out
    first = {k: (k, j) for k, j in reversed(board.support()[2])}
    classes = sorted(first)
    n = len(classes) + 1
    fig = plt.figure(figsize=figsize or (1.5 * n + 4.8, 3.3))
    size = fontsize or text_points(fig)
    # an empty column keeps the probability axis's tick labels off the nearest drawing
    gs = fig.add_gridspec(2, n + 3, width_ratios=[1] * n + [1.2, 0.3, 2.6], wspace=0.35, hspace=0.35,
                          left=0.07, right=0.98, bottom=0.14, top=0.86)
    columns = [(first[k], f"class {k}", class_colour(k)) for k in classes]
    predicted = shown.get("predicted")
    columns.append((QUERY, "query", class_colour(predicted) if predicted is not None else None))
    for c, (target, title, colour) in enumerate(columns):
        ax = fig.add_subplot(gs[0, c])
        ax.imshow(np.asarray(board.drawing_image(target)), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=size)
        ax.set(xticks=[], yticks=[])
        if c == 0:
            ax.set_ylabel("as drawn", fontsize=size)
        ax = fig.add_subplot(gs[1, c])
        ax.imshow(1 - board.model_input(target)[0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set(xticks=[], yticks=[])
        if c == 0:
            ax.set_ylabel("model input\n(28×28)", fontsize=size)
        ax.spines[:].set_edgecolor(colour if colour is not None else "black")
        ax.spines[:].set_linewidth(2)
    ax_n = fig.add_subplot(gs[1, n])
    ax_p = fig.add_subplot(gs[:, n + 2])
    if shown.get("probs") is not None:
        k, j = shown["nearest"]["target"]
        ax_n.imshow(1 - board.model_input((k, j))[0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax_n.set_title(f"nearest support\ndrawing: class {k}", fontsize=size)
        ax_n.spines[:].set_edgecolor(class_colour(k))
        ax_n.spines[:].set_linewidth(2)
        probs = shown["probs"].numpy()
        bars = ax_p.bar(range(len(shown["classes"])), probs, color=[class_colour(c) for c in shown["classes"]],
                        edgecolor=["black" if c == predicted else "none" for c in shown["classes"]])
        ax_p.set_xticks(range(len(shown["classes"])), [str(c) for c in shown["classes"]], fontsize=size)
        ax_p.set_xlabel("class", fontsize=size)
        if values:
            ax_p.bar_label(bars, [f"{p:.2f}" for p in probs], padding=2, fontsize=size)
            ax_p.tick_params(axis="y", labelsize=size)
        measure = shown.get("measure", "probability")
        ax_p.set_ylabel(measure, fontsize=size)
        ax_p.set_title(f"{shown['label']}: " + ("P(class | query)" if measure == "probability" else f"{measure} per class"),
                       fontsize=size)
    else:
        ax_p.set_title(shown.get("message") or "no prediction", fontsize=size)
    ax_n.set(xticks=[], yticks=[])
    ax_p.set_ylim(0, 1.15 if values else 1)  # room for the value over a bar of 1
    if values:
        ax_p.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    return fig
