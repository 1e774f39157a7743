"""A match service running in the test's loop (see lfr_testing.deployments for its clients)."""

import pytest

from lfr_match.app import build
from lfr_testing.deployments import match_settings
from lfr_testing.services import running


@pytest.fixture
async def match(platform, tmp_path):
    shell = build(platform, match_settings(tmp_path))
    async with running(shell):
        yield shell
