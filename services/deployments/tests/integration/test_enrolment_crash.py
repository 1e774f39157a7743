"""An enrolment killed at each of its steps (issue 25, item 3): the watchlist log and Redis agree
afterwards, and no entry is ever searchable under a review that did not see it.

The kill is a BaseException raised at the step (nothing of the service's own undo runs, as after a
SIGKILL); the janitor of the service, as it runs after a restart, then reconciles. Real Redis, the real
broker (the log read back from it), the real index and models."""

import pytest

from lfr.v1 import deployments_pb2 as pb
from lfr.v1 import watchlist_pb2
from lfr_contracts import AUDIT_RECORDED, WATCHLIST_CHANGED
from lfr_deployments.janitor import PENDING_STALE_S
from lfr_platform import sealing
from lfr_platform.auth import Principal
from lfr_platform.registry import RedisKeys
from lfr_testing.deployments import Api, create_request, provenance
from lfr_testing.kafka import decoded, read
from lfr_testing.media import lfw

pytestmark = pytest.mark.integration


class Killed(BaseException):
    """The process dies here: no except clause of the service's runs."""


def _item(data_dir, person: str) -> pb.WatchlistImage:
    return pb.WatchlistImage(
        **provenance(),
        client_ref=f"{person}.jpg",
        subject_id=person,
        category="wanted",
        source_reference=f"ref/{person}",
        approved_by="Insp. Approver",
        image=lfw(data_dir, person).read_bytes(),
    )


def _kill_at(shell, step: str, monkeypatch) -> None:
    """Arrange for the next enrolment to die at `step`."""
    service = shell.control.service

    def dies(*args, **kwargs):
        raise Killed(step)

    async def dies_async(*args, **kwargs):
        raise Killed(step)

    if step == "prepared":  # marked pending and review cleared; nothing written yet
        monkeypatch.setattr(service.index, "upsert", dies)
    elif step == "indexed":  # in this service's index, not on the log
        monkeypatch.setattr(service.watchlist_log, "publish", dies_async)
    elif step == "logged":  # on the log (the match replicas' copies), not recorded in Redis
        monkeypatch.setattr(service.store, "record_enrolled", dies_async)
    elif step == "recorded":  # recorded and audited, the subjects' count not written
        monkeypatch.setattr(service.store, "set_field", dies_async)


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


@pytest.mark.parametrize("step", ["prepared", "indexed", "logged", "recorded"])
async def test_an_enrolment_killed_at_each_step_leaves_the_log_and_redis_in_step(
    step, deployments, platform, data_dir, monkeypatch
):
    api = Api(deployments.control.port)
    deployment_id = (await api("create", create_request())).deployment_id
    first = await api.enrol(deployment_id, [_item(data_dir, "Colin_Powell")])
    assert first[0].status == pb.ENROL_STATUS_ENROLLED
    await api("review", deployment_id, "Insp. Reviewer")
    _kill_at(deployments, step, monkeypatch)
    who = Principal("manager", "manager")
    with pytest.raises(Killed):
        await deployments.control.service._enrol_one(deployment_id, _item(data_dir, "Ariel_Sharon"), who, 0.69)
    monkeypatch.undo()  # the service restarted: its janitor sweeps with a clock past the pending age
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
    again = await api.enrol(deployment_id, [_item(data_dir, "Ariel_Sharon")])
    assert again[0].status == pb.ENROL_STATUS_ENROLLED or step == "recorded"
    await api("review", deployment_id, "Insp. Reviewer")
