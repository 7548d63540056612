"""Shared fixtures: small procedural splits for fast tests, Omniglot when FSLCOURSE_DATA has it."""
import os

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def glyphs():
    """(train, val, test) procedural glyph splits; no files needed."""
    from fslcourse.data import glyph_splits

    return glyph_splits(seed=0)


@pytest.fixture(scope="session")
def omniglot():
    """The Omniglot splits; fails in CI if the data is missing, skips elsewhere."""
    from fslcourse.data import find_omniglot, load_omniglot

    if find_omniglot() is None:
        if os.environ.get("CI"):
            pytest.fail("Omniglot not found in CI: FSLCOURSE_DATA must point at ../shared/data")
        pytest.skip("Omniglot not found; set FSLCOURSE_DATA")
    return load_omniglot(progress=False)
