"""Fixtures shared by the widget tests."""
import io

import numpy as np
import pytest


@pytest.fixture(scope="session")
def png_pixels():
    """A function that decodes a widget's PNG bytes into an ``(H, W, 4)`` uint8 array, to compare pictures."""
    from PIL import Image

    def decode(png: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(png)))
    return decode
