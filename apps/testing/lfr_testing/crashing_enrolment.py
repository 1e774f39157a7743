"""A deployments service that dies mid-enrolment, for services/deployments/tests/integration/
test_enrolment_crash.py: run as `python -m lfr_testing.crashing_enrolment SPEC`, it creates a
deployment, enrols one photo, has the watchlist reviewed, writes the deployment id to the spec's
`out` file, then enrols a second photo and ends its own process at `step` of that enrolment
(os._exit: no finally, no except clause, no flush, as a SIGKILL would leave it).

SPEC is a pickle of (PlatformSettings, DeploymentsSettings, data dir, step, out file)."""

from __future__ import annotations

import asyncio
import os
import pickle
import sys
from pathlib import Path

from lfr.v1 import deployments_pb2 as pb
from lfr_deployments.app import build
from lfr_platform.auth import Principal
from lfr_testing.deployments import Api, create_request, provenance
from lfr_testing.media import lfw
from lfr_testing.services import running

KILLED = 137  # the exit status a SIGKILL gives, as the test expects it
# Where an enrolment can die, in order, and the call of the service it dies in.
STEPS = {
    "prepared": ("index", "upsert"),  # marked pending, review cleared; nothing written yet
    "indexed": ("watchlist_log", "publish"),  # in the service's own index, not on the log
    "logged": ("store", "record_enrolled"),  # on the log (the match replicas' copies), not in Redis
    "recorded": ("store", "set_field"),  # recorded and audited, the subjects' count not yet written
}


def photo(data_dir: Path, person: str) -> pb.WatchlistImage:
    return pb.WatchlistImage(
        **provenance(),
        client_ref=f"{person}.jpg",
        subject_id=person,
        category="wanted",
        source_reference=f"ref/{person}",
        approved_by="Insp. Approver",
        image=lfw(data_dir, person).read_bytes(),
    )


def _dies(*args, **kwargs):
    os._exit(KILLED)


async def _run(platform, settings, data_dir: Path, step: str, out: Path) -> None:
    shell = build(platform, settings)
    async with running(shell):
        api = Api(shell.control.port)
        deployment_id = (await api("create", create_request())).deployment_id
        out.write_text(deployment_id)
        await api.enrol(deployment_id, [photo(data_dir, "Colin_Powell")])
        await api("review", deployment_id, "Insp. Reviewer")
        service = shell.control.service
        owner, call = STEPS[step]
        setattr(getattr(service, owner), call, _dies)
        await service.enrolment.enrol_one(
            deployment_id, photo(data_dir, "Ariel_Sharon"), Principal("manager", "manager"), 0.69
        )
    raise SystemExit(f"the enrolment passed step {step!r} without dying")


if __name__ == "__main__":
    platform, settings, data_dir, step, out = pickle.loads(Path(sys.argv[1]).read_bytes())
    asyncio.run(_run(platform, settings, Path(data_dir), step, Path(out)))
