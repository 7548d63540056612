"""Data for the course: Omniglot, procedural glyphs, sinusoids, and episodes.

Nothing here imports the rest of the package (see ``tests/test_import_graph.py``).
"""
from .episodes import Episode, EpisodeSampler
from .omniglot import Omniglot, find_omniglot, load_image, load_omniglot, preprocess_image
from .procedural import glyph_splits, make_glyph_split
from .sinusoid import RegressionEpisode, SinusoidTasks
from .splits import ImageSplit

__all__ = [
    "Episode", "EpisodeSampler", "ImageSplit", "Omniglot", "RegressionEpisode", "SinusoidTasks",
    "find_omniglot", "glyph_splits", "load_image", "load_omniglot", "make_glyph_split", "preprocess_image",
]
