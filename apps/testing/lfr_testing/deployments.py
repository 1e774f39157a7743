"""Clients, tokens and settings for tests of the DeploymentService and the AlertService (served in the
test's loop)."""

import asyncio
import datetime as dt
import time
from pathlib import Path

import yaml

from lfr.v1 import deployments_pb2 as pb
from lfr_contracts.clients import DeploymentClient
from lfr_deployments.settings import DeploymentsSettings
from lfr_match.settings import MatchSettings
from lfr_platform.equity import EquityPolicy

MANAGER_TOKEN = "manager-token-for-tests-0123456789"
VIEWER_TOKEN = "viewer-token-for-tests-0123456789"
OFFICER_TOKEN = "officer-token-for-tests-0123456789"
SUPERVISOR_TOKEN = "supervisor-token-for-tests-0123456789"
# Another manager (another principal: ratifies what officer-1 created), and a manager scoped to one
# deployment id (it may not create any).
SECOND_MANAGER_TOKEN = "second-manager-token-for-tests-0123"
SCOPED_MANAGER_TOKEN = "scoped-manager-token-for-tests-0123"
SCOPED_DEPLOYMENT = "dep-scoped0000000000"
# The tokens of the `platform` fixture (LFR_AUTH_TOKENS of every service a test builds).
TEST_GRANTS = [
    {"token": MANAGER_TOKEN, "identity": "officer-1", "role": "manager"},
    {"token": SECOND_MANAGER_TOKEN, "identity": "officer-2", "role": "manager"},
    {
        "token": SCOPED_MANAGER_TOKEN,
        "identity": "manager-scoped",
        "role": "manager",
        "deployments": [SCOPED_DEPLOYMENT],
    },
    {"token": VIEWER_TOKEN, "identity": "analyst-1", "role": "viewer"},
    {"token": OFFICER_TOKEN, "identity": "control-room-1", "role": "officer"},
    {"token": SUPERVISOR_TOKEN, "identity": "sergeant-1", "role": "supervisor"},
]


def deployments_settings(tmp_path, **overrides) -> DeploymentsSettings:
    fields = dict(
        http_port=0,
        grpc_port=0,
        data_dir=tmp_path / "watchlists",
        janitor_interval_s=0.2,
        copy_wait_s=5.0,
    )
    fields.update(overrides)
    return DeploymentsSettings(**fields)


def match_settings(tmp_path, name: str = "match", **overrides) -> MatchSettings:
    fields = dict(http_port=0, data_dir=tmp_path / f"{name}-copy", heartbeat_interval_s=0.2)
    fields.update(overrides)
    return MatchSettings(**fields)


class Api:
    """A sync client (DeploymentClient by default, or AlertClient), called from a thread so that the
    in-loop server keeps serving."""

    def __init__(self, port: int, token: str = MANAGER_TOKEN, client=DeploymentClient) -> None:
        self.client = client(f"127.0.0.1:{port}", token, timeout_s=30)

    async def __call__(self, method: str, *args, **kwargs):
        return await asyncio.to_thread(getattr(self.client, method), *args, **kwargs)

    async def enrol(self, deployment_id: str, images, expected: int = 0) -> list[pb.EnrolWatchlistResponse]:
        return await asyncio.to_thread(lambda: list(self.client.enrol(deployment_id, images, expected)))


def shipped_policy() -> dict:
    """The shipped policy file (deploy/policy.yaml), as data."""
    return yaml.safe_load((Path(__file__).resolve().parents[3] / "deploy" / "policy.yaml").read_text())


def policy_yaml(**overrides) -> str:
    """The shipped policy file (deploy/policy.yaml) with `overrides`, as YAML to write for a test."""
    data = shipped_policy()
    data.update(overrides)
    return yaml.safe_dump(data)


def shipped_equity(**overrides) -> EquityPolicy:
    """The shipped policy's equity block (with `overrides`), as the deployments service copies it into
    a deployment's record."""
    return EquityPolicy(**{**shipped_policy()["equity"], **overrides})


def provenance(**overrides) -> dict:
    """What a WatchlistImage needs besides its subject, category, source reference and approver, on the
    shipped policy's lists: a custody photo taken 60 days ago."""
    fields = dict(
        image_source="custody",
        legal_basis="dpa_2018_part_3",
        image_date=(dt.date.today() - dt.timedelta(days=60)).isoformat(),
    )
    fields.update(overrides)
    return fields


def watchlist_image(photo: Path, subject_id: str, client_ref: str, **overrides) -> pb.WatchlistImage:
    """A photo as one image of an enrolment: wanted, approved, with provenance on the shipped policy's lists."""
    fields = dict(
        provenance(), client_ref=client_ref, subject_id=subject_id, category="wanted", source_reference="ref",
        approved_by="Insp. A", image=Path(photo).read_bytes(),
    )  # fmt: skip
    fields.update(overrides)
    return pb.WatchlistImage(**fields)


def create_request(**overrides) -> pb.CreateDeploymentRequest:
    request = pb.CreateDeploymentRequest(
        name="Operation Test",
        purpose="locate wanted persons",
        authorising_officer="Supt. Example",
        location="High Street",
        where="intelligence_led",
        cameras=[pb.CameraCoverage(van_id="van-1", camera_id="cam-1")],
    )
    request.planned_end.FromNanoseconds(int((time.time() + overrides.pop("hours", 1) * 3600) * 1e9))
    for key, value in overrides.items():
        setattr(request, key, value)
    return request
