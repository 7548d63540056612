"""Interactive ipywidgets views; each is a :class:`~fslcourse.widgets.base.Explorer` with ``render()`` and ``.widget`` (see docs/DEVELOPING.md)."""
