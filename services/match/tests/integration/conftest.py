"""The deployments service and a match replica running in the test's loop: deployments are created and
enrolled through the one, matched by the other (from its copy of the watchlist log)."""

import pytest

from lfr_deployments.app import build as build_deployments
from lfr_match.app import build as build_match
from lfr_testing.deployments import deployments_settings, match_settings
from lfr_testing.services import running


@pytest.fixture
async def deployments(platform, tmp_path):
    async with running(build_deployments(platform, deployments_settings(tmp_path))) as shell:
        yield shell


@pytest.fixture
async def match(platform, tmp_path, deployments):
    async with running(build_match(platform, match_settings(tmp_path))) as shell:
        yield shell
