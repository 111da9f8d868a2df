"""Shared by every test directory: makes tests/helpers importable as `helpers`.

The daemon fixtures live in tests/e2e/conftest.py, so that unit tests never start one.
"""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
