"""``python -m fslcourse``: see :mod:`fslcourse.cli`."""
import sys

from .cli import main

sys.exit(main())
