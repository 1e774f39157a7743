"""Fixtures of the end-to-end tests."""

import pytest

from lfr_stack.stack import Stack


@pytest.fixture
def stack(tmp_path, models_dir):
    """A local stack under the test's folder (started by the test, with the services it needs), stopped after."""
    stack = Stack(tmp_path / "stack", models_dir=models_dir)
    try:
        yield stack
    finally:
        stack.stop()
