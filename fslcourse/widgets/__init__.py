"""Interactive ipywidgets views; each is a class with ``render()`` and ``.widget`` (see docs/DEVELOPING.md)."""
