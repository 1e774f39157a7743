"""A deployments service running in the test's loop (see lfr_testing.deployments for its clients)."""

import pytest

from lfr_deployments.app import build
from lfr_testing.deployments import deployments_settings
from lfr_testing.services import running


@pytest.fixture
async def deployments(platform, tmp_path):
    shell = build(platform, deployments_settings(tmp_path))
    async with running(shell):
        yield shell
