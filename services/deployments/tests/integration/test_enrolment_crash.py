"""An enrolment killed at each of its steps (issue 25, item 3): the watchlist log and Redis agree
afterwards, and no entry is ever searchable under a review that did not see it.

The service runs in a process of its own (lfr_testing.crashing_enrolment), which ends itself at the
step with os._exit, as a SIGKILL would end it: nothing of its own undo runs. A new service on the
same Redis, broker and index then starts, and its janitor reconciles. Real Redis, the real broker
(the log read back from it), the real index and models."""

import asyncio
import pickle
import sys

import pytest

from lfr.v1 import deployments_pb2 as pb
from lfr.v1 import watchlist_pb2
from lfr_contracts import AUDIT_RECORDED, WATCHLIST_CHANGED
from lfr_deployments.app import build
from lfr_deployments.janitor import PENDING_STALE_S
from lfr_platform import sealing
from lfr_platform.registry import RedisKeys
from lfr_testing.crashing_enrolment import KILLED, STEPS, photo
from lfr_testing.deployments import Api, deployments_settings
from lfr_testing.kafka import decoded, read
from lfr_testing.services import running

pytestmark = pytest.mark.integration


async def _logged_entries(platform, deployment_id: str, data_key: bytes) -> set[str]:
    """The entries the log holds for the deployment: what every match replica's copy is built from."""
    entries: set[str] = set()
    for change in decoded(WATCHLIST_CHANGED, await read(platform, WATCHLIST_CHANGED, count=1)):
        if change.deployment_id != deployment_id:
            continue
        kind = change.WhichOneof("change")
        if kind == "upserted":
            for sealed in change.upserted.entries:
                entry = watchlist_pb2.WatchlistEntry.FromString(sealing.unseal(data_key, sealed, deployment_id))
                if not entry.template_of:
                    entries.add(entry.entry_id)
        elif kind == "deleted":
            entries -= set(change.deleted.entry_ids)
    return entries


@pytest.mark.parametrize("step", list(STEPS))
async def test_an_enrolment_killed_at_each_step_leaves_the_log_and_redis_in_step(step, platform, tmp_path, data_dir):
    settings = deployments_settings(tmp_path)
    spec, out = tmp_path / "spec.pickle", tmp_path / "deployment"
    spec.write_bytes(pickle.dumps((platform, settings, str(data_dir), step, str(out))))
    child = await asyncio.create_subprocess_exec(sys.executable, "-m", "lfr_testing.crashing_enrolment", str(spec))
    assert await asyncio.wait_for(child.wait(), timeout=180) == KILLED  # the process died at the step
    deployment_id = out.read_text()
    # The service started again on the same Redis, broker and index; its janitor sweeps with a clock
    # past the pending age.
    async with running(build(platform, settings)) as deployments:
        await _check(step, deployments, platform, data_dir, deployment_id)


async def _check(step: str, deployments, platform, data_dir, deployment_id: str) -> None:
    api = Api(deployments.control.port)
    keys = RedisKeys(platform.redis_prefix)
    redis = deployments.control.service.store.client
    # Whatever step it died at, the review no longer stands: nothing is matched until reviewed again.
    assert not await redis.hget(keys.deployment(deployment_id), "reviewed_at")
    janitor = deployments.control.janitor
    await janitor.sweep(now=janitor.clock() + PENDING_STALE_S + 1)

    recorded = {k.decode() for k in await redis.hkeys(keys.manifest(deployment_id))}
    data_key = await deployments.control.service.store.data_key(deployment_id)
    assert await _logged_entries(platform, deployment_id, data_key) == recorded
    assert len(recorded) == (2 if step == "recorded" else 1)
    assert deployments.control.service.index.count(deployment_id, templates=False) == len(recorded)
    assert not await redis.hgetall(keys.pending_entries(deployment_id))
    audits = decoded(AUDIT_RECORDED, await read(platform, AUDIT_RECORDED, count=1, settle_s=0.5))
    undone = [a for a in audits if a.event == "watchlist.enrolment_undone" and a.deployment_id == deployment_id]
    assert len(undone) == (0 if step == "recorded" else 1)
    # The deployment takes the same photo again, and a review covers it.
    again = await api.enrol(deployment_id, [photo(data_dir, "Ariel_Sharon")])
    assert again[0].status == pb.ENROL_STATUS_ENROLLED or step == "recorded"
    await api("review", deployment_id, "Insp. Reviewer")
