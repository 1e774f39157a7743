"""The AlertService over real gRPC, Redis and the broker: decisions, their order, repeats, corrections,
refusals, what each publishes and audits, and the counts the deployment report reads."""

import asyncio
import json
from datetime import UTC, datetime

import grpc
import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from lfr.v1 import alerts_pb2 as pb
from lfr_alert.app import build
from lfr_alert.settings import AlertSettings
from lfr_contracts import ALERTS_ADJUDICATED, ALERTS_RAISED, AUDIT_RECORDED, MATCHES_FOUND
from lfr_contracts.clients import AlertClient
from lfr_platform import sealing
from lfr_platform.registry import RedisKeys
from lfr_platform.signing import verify_alert
from lfr_testing.deployments import OFFICER_TOKEN, SUPERVISOR_TOKEN, VIEWER_TOKEN, Api
from lfr_testing.kafka import decoded, produce, read
from lfr_testing.messages import match_record
from lfr_testing.services import alert_public_key, running, seed_deployment

pytestmark = pytest.mark.integration


@pytest.fixture
async def alert(platform):
    async with running(build(platform, AlertSettings(http_port=0, grpc_port=0, sweep_interval_s=0.2))) as shell:
        yield shell


async def _raise(platform, deployment_id, key, subject="S1", camera="cam-1", sequence=1):
    """Produce a match and return the alert it raised (revision 1)."""
    await produce(platform, MATCHES_FOUND, [match_record(deployment_id, camera, subject, sequence, 0.8, key=key)])
    raised = decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=1))
    return [a for a in raised if a.subject_id == subject][-1]


def _api(shell, token=OFFICER_TOKEN):
    return Api(shell.control.port, token, client=AlertClient)


async def _stats(platform, deployment_id) -> dict[str, int]:
    client = aioredis.from_url(platform.redis_url)
    try:
        raw = await client.hgetall(RedisKeys(platform.redis_prefix).deployment(deployment_id))
    finally:
        await client.aclose()
    return {k.decode(): int(v) for k, v in raw.items() if k.startswith(b"stats:")}


async def test_an_alert_goes_through_every_step_and_each_is_published_audited_and_counted(platform, alert):
    deployment_id, key = await seed_deployment(platform)
    raised = await _raise(platform, deployment_id, key)
    officer = _api(alert)
    adjudicated = await officer("adjudicate", raised.alert_id, pb.ADJUDICATION_OUTCOME_TRUE, "PC 1234 Example")
    assert adjudicated.changed and adjudicated.alert.state == pb.ALERT_STATE_ADJUDICATED
    assert adjudicated.alert.revision == raised.revision + 1
    decision = adjudicated.alert.adjudication.decision
    assert (decision.officer, decision.recorded_by, decision.role) == ("PC 1234 Example", "control-room-1", "officer")
    engaged = await officer("engage", raised.alert_id, True, "PC 1234 Example", "stopped at the station exit")
    assert engaged.alert.state == pb.ALERT_STATE_ENGAGED and engaged.alert.engagement.engaged
    resolved = await officer("outcome", raised.alert_id, pb.FINAL_OUTCOME_ARREST, "PC 1234 Example")
    assert resolved.alert.state == pb.ALERT_STATE_RESOLVED and resolved.alert.revision == raised.revision + 3

    # Each decision: a new revision on the alert topic, an event on the adjudication topic, an audit event.
    revisions = decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=4))
    assert [a.state for a in revisions] == [
        pb.ALERT_STATE_RAISED,
        pb.ALERT_STATE_ADJUDICATED,
        pb.ALERT_STATE_ENGAGED,
        pb.ALERT_STATE_RESOLVED,
    ]
    # The officer still sees the face while it lives; sealed on the bus; each revision signed.
    assert sealing.unseal(key, revisions[-1].probe_crop, deployment_id) == b"crop-1"
    public = await alert_public_key(platform, deployment_id)
    assert all(verify_alert(public, r) for r in revisions)
    events = decoded(ALERTS_ADJUDICATED, await read(platform, ALERTS_ADJUDICATED, count=3))
    assert [e.step for e in events] == ["adjudication", "engagement", "outcome"]
    assert all(e.alert_id == raised.alert_id and not e.correction for e in events)
    # Each decision event is signed too (issue 25, item 6), and a changed byte fails it.
    assert all(verify_alert(public, e) for e in events)
    altered = type(events[0])()
    altered.CopyFrom(events[0])
    altered.correction = True
    assert not verify_alert(public, altered)
    audit = decoded(AUDIT_RECORDED, await read(platform, AUDIT_RECORDED, count=3))
    assert [a.event for a in audit] == ["alert.adjudicated", "alert.engagement_recorded", "alert.outcome_recorded"]
    assert {(a.actor, a.role, a.details["officer"]) for a in audit} == {
        ("control-room-1", "officer", "PC 1234 Example")
    }
    assert await _stats(platform, deployment_id) == {
        "stats:alerts": 1,
        "stats:alerts@van-1": 1,
        "stats:adjudicated_true": 1,
        "stats:adjudicated_true@van-1": 1,
        "stats:engaged": 1,
        "stats:engaged@van-1": 1,
        "stats:outcome_arrest": 1,
        "stats:outcome_arrest@van-1": 1,
    }
    listed = await officer("list", deployment_id)
    assert [(a.alert_id, a.revision, a.probe_crop) for a in listed] == [(raised.alert_id, resolved.alert.revision, b"")]


async def test_a_repeat_is_a_no_op_and_a_conflict_needs_a_supervisor_with_a_reason(platform, alert):
    deployment_id, key = await seed_deployment(platform)
    raised = await _raise(platform, deployment_id, key)
    officer, supervisor = _api(alert), _api(alert, SUPERVISOR_TOKEN)
    first = await officer("adjudicate", raised.alert_id, pb.ADJUDICATION_OUTCOME_TRUE, "PC 1")
    again = await officer("adjudicate", raised.alert_id, pb.ADJUDICATION_OUTCOME_TRUE, "PC 2")
    assert not again.changed and again.alert == first.alert  # same revision, first officer kept

    with pytest.raises(grpc.RpcError) as conflict:
        await officer("adjudicate", raised.alert_id, pb.ADJUDICATION_OUTCOME_FALSE, "PC 2")
    assert conflict.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already has adjudication 'true' by PC 1" in conflict.value.details()
    with pytest.raises(grpc.RpcError) as not_allowed:
        await officer("adjudicate", raised.alert_id, pb.ADJUDICATION_OUTCOME_FALSE, "PC 2", "", "I was wrong")
    assert not_allowed.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as no_reason:
        await supervisor("adjudicate", raised.alert_id, pb.ADJUDICATION_OUTCOME_FALSE, "Sgt 9")
    assert (
        no_reason.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "correction_reason" in no_reason.value.details()
    )
    assert (await officer("get", raised.alert_id)) == first.alert  # nothing half-written by the refusals

    corrected = await supervisor(
        "adjudicate",
        raised.alert_id,
        pb.ADJUDICATION_OUTCOME_FALSE,
        "Sgt 9",
        "",
        "ID checked: not the subject",
        first.alert.revision,
    )
    assert corrected.changed and corrected.alert.adjudication.outcome == pb.ADJUDICATION_OUTCOME_FALSE
    assert corrected.alert.adjudication.decision.correction_reason == "ID checked: not the subject"
    stats = await _stats(platform, deployment_id)
    assert (stats["stats:adjudicated_true"], stats["stats:adjudicated_false"]) == (0, 1)
    audit = decoded(AUDIT_RECORDED, await read(platform, AUDIT_RECORDED, count=5, settle_s=0.5))
    assert [a.event for a in audit] == [
        "alert.adjudicated",
        "alert.refused",
        "alert.refused",
        "alert.refused",
        "alert.corrected",
    ]
    assert [a.details["reason"] for a in audit[1:4]] == ["conflict", "permission", "invalid"]
    assert audit[-1].details["previous"] == "true" and audit[-1].actor == "sergeant-1"
    events = decoded(ALERTS_ADJUDICATED, await read(platform, ALERTS_ADJUDICATED, count=2, settle_s=0.5))
    assert [e.correction for e in events] == [False, True]


async def test_a_first_decision_with_a_correction_reason_is_refused(platform, alert):
    """Bus gap: a first adjudication was accepted with a correction_reason (nothing to correct)."""
    deployment_id, key = await seed_deployment(platform)
    raised = await _raise(platform, deployment_id, key)
    with pytest.raises(grpc.RpcError) as refused:
        await _api(alert, SUPERVISOR_TOKEN)(
            "adjudicate", raised.alert_id, pb.ADJUDICATION_OUTCOME_TRUE, "Sgt 9", "", "x"
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "nothing to correct" in refused.value.details()
    assert (await _api(alert)("get", raised.alert_id)).state == pb.ALERT_STATE_RAISED


async def test_two_supervisors_correcting_at_once_change_it_once(platform, alert):
    """Bus gap: two supervisors correcting the same decision at once both got changed=true; the second
    overwrote a correction it had not seen. A correction names the revision it corrects."""
    deployment_id, key = await seed_deployment(platform)
    raised = await _raise(platform, deployment_id, key)
    first = await _api(alert)("adjudicate", raised.alert_id, pb.ADJUDICATION_OUTCOME_TRUE, "PC 1")
    supervisor = _api(alert, SUPERVISOR_TOKEN)
    seen = first.alert.revision
    corrections = [
        supervisor("adjudicate", raised.alert_id, outcome, officer, "", reason, seen)
        for outcome, officer, reason in (
            (pb.ADJUDICATION_OUTCOME_FALSE, "Sgt 9", "ID checked: not the subject"),
            (pb.ADJUDICATION_OUTCOME_UNDETERMINED, "Sgt 4", "the face was half hidden"),
        )
    ]
    results = await asyncio.gather(*corrections, return_exceptions=True)
    changed = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, grpc.RpcError)]
    assert len(changed) == 1 and changed[0].changed and changed[0].alert.revision == seen + 1
    assert len(refused) == 1 and refused[0].code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"changed since revision {seen}" in refused[0].details()
    with pytest.raises(grpc.RpcError) as unnamed:  # a correction without the revision it corrects
        await supervisor("adjudicate", raised.alert_id, pb.ADJUDICATION_OUTCOME_TRUE, "Sgt 4", "", "again")
    assert unnamed.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "names the revision" in unnamed.value.details()


@pytest.mark.parametrize(
    "steps, code, message",
    [
        ([("engage", True)], grpc.StatusCode.FAILED_PRECONDITION, "not adjudicated yet"),
        ([("outcome", pb.FINAL_OUTCOME_ARREST)], grpc.StatusCode.FAILED_PRECONDITION, "not adjudicated yet"),
        (
            [("adjudicate", pb.ADJUDICATION_OUTCOME_TRUE), ("outcome", pb.FINAL_OUTCOME_ARREST)],
            grpc.StatusCode.FAILED_PRECONDITION,
            "engagement is not recorded",
        ),
        (
            [("adjudicate", pb.ADJUDICATION_OUTCOME_TRUE), ("engage", False), ("outcome", pb.FINAL_OUTCOME_ARREST)],
            grpc.StatusCode.FAILED_PRECONDITION,
            "was not engaged",
        ),
        (
            [("adjudicate", pb.ADJUDICATION_OUTCOME_TRUE), ("engage", True), ("outcome", pb.FINAL_OUTCOME_OTHER)],
            grpc.StatusCode.INVALID_ARGUMENT,
            "needs its detail",
        ),
        ([("adjudicate", pb.ADJUDICATION_OUTCOME_UNSPECIFIED)], grpc.StatusCode.INVALID_ARGUMENT, "must be one of"),
    ],
)
async def test_steps_out_of_order_or_invalid_are_refused_with_the_reason(platform, alert, steps, code, message):
    deployment_id, key = await seed_deployment(platform)
    raised = await _raise(platform, deployment_id, key)
    officer = _api(alert)
    *allowed, last = steps
    for method, value in allowed:
        await officer(method, raised.alert_id, value, "PC 1")
    before = await officer("get", raised.alert_id)
    with pytest.raises(grpc.RpcError) as refused:
        await officer(last[0], raised.alert_id, last[1], "PC 1")
    assert refused.value.code() == code and message in refused.value.details()
    assert await officer("get", raised.alert_id) == before


async def test_bad_callers_and_unknown_alerts_are_refused_and_audited(platform, alert, tmp_path):
    deployment_id, key = await seed_deployment(platform)
    raised = await _raise(platform, deployment_id, key)
    cases = [
        (_api(alert, VIEWER_TOKEN), raised.alert_id, "PC 1", grpc.StatusCode.PERMISSION_DENIED),
        (_api(alert, "not-a-token-of-anyone-at-all"), raised.alert_id, "PC 1", grpc.StatusCode.UNAUTHENTICATED),
        (_api(alert), "no-such-alert", "PC 1", grpc.StatusCode.NOT_FOUND),
        (_api(alert), raised.alert_id, "   ", grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for api, alert_id, officer, code in cases:
        with pytest.raises(grpc.RpcError) as refused:
            await api("adjudicate", alert_id, pb.ADJUDICATION_OUTCOME_TRUE, officer)
        assert refused.value.code() == code, refused.value.details()
    audit = decoded(AUDIT_RECORDED, await read(platform, AUDIT_RECORDED, count=4, settle_s=0.5))
    assert [(a.event, a.actor) for a in audit] == [
        ("access.denied", "analyst-1"),
        ("access.denied", "unauthenticated"),
        ("alert.refused", "control-room-1"),
        ("alert.refused", "control-room-1"),
    ]
    assert (await _api(alert)("get", raised.alert_id)).state == pb.ALERT_STATE_RAISED


async def test_a_token_sees_only_its_deployments_and_the_token_file_is_reread(platform, tmp_path, eventually):
    mine, _ = await seed_deployment(platform)
    theirs, their_key = await seed_deployment(platform)
    tokens = tmp_path / "tokens.json"
    scoped = "scoped-officer-token-0123456789"
    grant = {"token": scoped, "identity": "officer-of-mine", "role": "officer", "deployments": [mine]}
    tokens.write_text(json.dumps([grant]))
    shell = build(platform.model_copy(update={"auth_tokens_file": tokens}), AlertSettings(http_port=0, grpc_port=0))
    async with running(shell):
        theirs_alert = await _raise(platform, theirs, their_key, subject="S9")
        api = _api(shell, scoped)
        # Bus gap: NOT_FOUND for an alert of another deployment (it was PERMISSION_DENIED), as for an id
        # that does not exist: a scoped token cannot tell which alert ids exist.
        for alert_id in (theirs_alert.alert_id, "no-such-alert-id"):
            for call, args in (("adjudicate", (pb.ADJUDICATION_OUTCOME_TRUE, "PC 1")), ("get", ()), ("images", ())):
                with pytest.raises(grpc.RpcError) as refused:
                    await api(call, alert_id, *args)
                assert refused.value.code() == grpc.StatusCode.NOT_FOUND
                assert refused.value.details() == f"no alert {alert_id!r}"
        with pytest.raises(grpc.RpcError) as listing:
            await api("list", theirs)
        assert listing.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert await api("list", mine) == []
        # Rotation without a restart: the file now grants both deployments.
        tokens.write_text(json.dumps([{**grant, "deployments": [mine, theirs]}]))

        async def sees_theirs():
            try:
                assert [a.alert_id for a in await api("list", theirs)] == [theirs_alert.alert_id]
            except grpc.RpcError as exc:
                raise AssertionError(exc.details()) from exc

        await eventually(sees_theirs, timeout_s=10)


async def test_images_are_served_while_the_deployment_lives_and_gone_after_close(platform, alert):
    deployment_id, key = await seed_deployment(platform)
    keys = RedisKeys(platform.redis_prefix)
    client = aioredis.from_url(platform.redis_url)
    await client.set(keys.reference_image(deployment_id, "entry-1"), sealing.seal(key, b"reference", deployment_id))
    raised = await _raise(platform, deployment_id, key)
    assert raised.entry_id == "entry-1"
    images = await _api(alert)("images", raised.alert_id)
    assert (images.probe_jpeg, images.reference_jpeg) == (b"crop-1", b"reference")
    # What close does to the alert's keys: the deployment's keys go, its record is marked closed.
    async for name in client.scan_iter(match=keys.deployment_pattern(deployment_id)):
        await client.delete(name)
    await client.hset(keys.deployment(deployment_id), "status", "closed")
    await client.aclose()
    with pytest.raises(grpc.RpcError) as gone:
        await _api(alert)("images", raised.alert_id)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND and "deleted with deployment" in gone.value.details()
    # The decision record outlives the close (follow-up, the report).
    decided = await _api(alert)("adjudicate", raised.alert_id, pb.ADJUDICATION_OUTCOME_TRUE, "PC 1")
    assert decided.changed


async def test_a_decision_made_while_the_broker_is_away_reaches_it_later(platform, alert, eventually):
    deployment_id, key = await seed_deployment(platform)
    raised = await _raise(platform, deployment_id, key)
    outbox = alert.control.outbox
    producer, outbox.producer = outbox.producer, None  # as if the broker could not be reached
    try:
        decided = await _api(alert)("adjudicate", raised.alert_id, pb.ADJUDICATION_OUTCOME_FALSE, "PC 1")
        assert decided.changed and await outbox.pending() == 3  # revision, decision event, audit event
    finally:
        outbox.producer = producer
    await eventually(lambda: _pending_is(outbox, 0), timeout_s=20)
    events = decoded(ALERTS_ADJUDICATED, await read(platform, ALERTS_ADJUDICATED, count=1))
    assert events[0].adjudication.outcome == pb.ADJUDICATION_OUTCOME_FALSE


async def _pending_is(outbox, n):
    assert await outbox.pending() == n


async def test_alerts_waiting_for_a_decision_are_counted_per_van(platform, alert, eventually):
    from prometheus_client import REGISTRY

    deployment_id, key = await seed_deployment(platform)
    raised = await _raise(platform, deployment_id, key)

    def waiting():
        value = REGISTRY.get_sample_value(
            "lfr_alerts_unadjudicated", {"deployment_id": deployment_id, "van_id": "van-1"}
        )
        assert value is not None
        return value

    await eventually(lambda: waiting() == 1, timeout_s=10)
    await _api(alert)("adjudicate", raised.alert_id, pb.ADJUDICATION_OUTCOME_TRUE, "PC 1")
    await eventually(lambda: waiting() == 0, timeout_s=10)
    assert json.dumps(waiting())  # a number Prometheus can scrape


def _held_total(deployment_id: str, camera_id: str) -> float:
    from prometheus_client import REGISTRY

    labels = {"deployment_id": deployment_id, "van_id": "van-1", "camera_id": camera_id}
    return REGISTRY.get_sample_value("lfr_alerts_held_total", labels) or 0.0


async def test_a_lookalike_within_min_margin_holds_the_alert_and_only_a_supervisor_adjudicates_it(platform, alert):
    """Issue 18 (Thompson & Carlo v MPC: a man stopped as his brother): with the policy's min_margin set,
    an alert whose runner-up scores within it is held for a supervisor; an officer's adjudication is
    refused, audited and counted, a supervisor's accepted, and the officer goes on from there."""
    from prometheus_client import REGISTRY

    deployment_id, key = await seed_deployment(platform, min_margin=0.05)
    refused_before = REGISTRY.get_sample_value("lfr_alert_decisions_refused_total", {"reason": "held"}) or 0.0
    await produce(
        platform,
        MATCHES_FOUND,
        [
            match_record(deployment_id, "cam-1", "S1", 1, 0.73, key=key, runner_up="S2", runner_up_score=0.71),
            match_record(deployment_id, "cam-2", "S1", 2, 0.80, key=key, runner_up="S2", runner_up_score=0.60),
        ],
    )
    alerts = decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=2))
    [held] = [a for a in alerts if a.camera.camera_id == "cam-1"]
    [clear] = [a for a in alerts if a.camera.camera_id == "cam-2"]
    assert held.held_for_supervisor and round(held.margin, 3) == 0.02
    assert held.hold_reason == (
        "runner-up S2 scores 0.710, within 0.020 of 0.730 (the policy's min_margin 0.05): a supervisor decides"
    )
    assert not clear.held_for_supervisor and clear.hold_reason == "" and round(clear.margin, 2) == 0.20
    assert (_held_total(deployment_id, "cam-1"), _held_total(deployment_id, "cam-2")) == (1.0, 0.0)

    officer, supervisor = _api(alert), _api(alert, SUPERVISOR_TOKEN)
    with pytest.raises(grpc.RpcError) as refused:
        await officer("adjudicate", held.alert_id, pb.ADJUDICATION_OUTCOME_TRUE, "PC 1")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "held for a supervisor" in refused.value.details() and "runner-up S2" in refused.value.details()
    assert (await officer("get", held.alert_id)).state == pb.ALERT_STATE_RAISED
    assert (await officer("adjudicate", clear.alert_id, pb.ADJUDICATION_OUTCOME_TRUE, "PC 1")).changed

    decided = await supervisor("adjudicate", held.alert_id, pb.ADJUDICATION_OUTCOME_FALSE, "Sgt 9")
    assert decided.changed and decided.alert.adjudication.decision.role == "supervisor"
    assert decided.alert.held_for_supervisor and decided.alert.runner_up_subject_id == "S2"  # kept on record
    engaged = await officer("engage", held.alert_id, False, "PC 1")  # the steps after it are the officer's
    assert engaged.changed and engaged.alert.state == pb.ALERT_STATE_NOT_ENGAGED
    # Systems following decisions see which were held, and why; the deployment's report counts them.
    adjudicated = decoded(ALERTS_ADJUDICATED, await read(platform, ALERTS_ADJUDICATED, count=3, settle_s=0.5))
    assert [(e.alert_id == held.alert_id, e.held_for_supervisor, bool(e.hold_reason)) for e in adjudicated] == [
        (False, False, False),
        (True, True, True),
        (True, True, True),
    ]
    client = aioredis.from_url(platform.redis_url)
    try:
        record = await client.hgetall(RedisKeys(platform.redis_prefix).deployment(deployment_id))
    finally:
        await client.aclose()
    assert (record[b"stats:held"], record[b"stats:held@van-1"], record[b"stats:alerts"]) == (b"1", b"1", b"2")

    audit = decoded(AUDIT_RECORDED, await read(platform, AUDIT_RECORDED, count=4, settle_s=0.5))
    assert [(a.event, a.role) for a in audit] == [
        ("alert.refused", "officer"),
        ("alert.adjudicated", "officer"),
        ("alert.adjudicated", "supervisor"),
        ("alert.engagement_recorded", "officer"),
    ]
    assert audit[0].details["reason"] == "held" and audit[0].details["alert_id"] == held.alert_id
    refused_now = REGISTRY.get_sample_value("lfr_alert_decisions_refused_total", {"reason": "held"})
    assert refused_now == refused_before + 1


async def _fleet_window(platform, day: str) -> dict[str, int]:
    client = aioredis.from_url(platform.redis_url)
    try:
        raw = await client.hgetall(RedisKeys(platform.redis_prefix).false_alerts_by_group(day))
    finally:
        await client.aclose()
    return {k.decode(): int(v) for k, v in raw.items()}


async def test_perceived_groups_are_recorded_counted_corrected_and_measured(platform, alert, eventually):
    deployment_id, key = await seed_deployment(platform)
    raised = await _raise(platform, deployment_id, key)
    officer, supervisor = _api(alert), _api(alert, SUPERVISOR_TOKEN)

    # A value outside the deployment's list (the shipped policy's): refused with the list named, audited.
    with pytest.raises(grpc.RpcError) as outside:
        await officer("adjudicate", raised.alert_id, pb.ADJUDICATION_OUTCOME_FALSE, "PC 1", perceived_ethnicity="IC7")
    assert outside.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "one of the deployment's list: IC1, IC2, IC3, IC4, IC5, IC6, IC9" in outside.value.details()

    false = await officer(
        "adjudicate",
        raised.alert_id,
        pb.ADJUDICATION_OUTCOME_FALSE,
        "PC 1",
        perceived_sex="male",
        perceived_ethnicity="IC3",
    )
    adjudication = false.alert.adjudication
    assert (adjudication.perceived_sex, adjudication.perceived_ethnicity) == ("male", "IC3")
    stats = await _stats(platform, deployment_id)
    # Deployment-wide only, no per-van split of perceptions.
    assert {k: v for k, v in stats.items() if "perceived" in k} == {
        "stats:perceived_false:sex:male": 1,
        "stats:perceived_false:ethnicity:IC3": 1,
    }
    day = datetime.fromtimestamp(raised.captured_at.ToNanoseconds() / 1e9, UTC).date().isoformat()
    assert await _fleet_window(platform, day) == {"sex:male": 1, "ethnicity:IC3": 1}

    # The live monitor: per deployment and for the fleet, with the policy's limits beside them.
    def measured():
        sample = REGISTRY.get_sample_value
        mine = {"window": "deployment", "deployment_id": deployment_id}
        assert sample("lfr_equity_false_alerts", {**mine, "dimension": "ethnicity", "group": "IC3"}) == 1
        assert sample("lfr_equity_false_alerts_tested", {**mine, "dimension": "ethnicity"}) == 1
        assert sample("lfr_equity_p_value", {**mine, "dimension": "ethnicity", "group": "IC3"}) == pytest.approx(0.042)
        assert sample("lfr_equity_p_value_limit", mine) == 0.001 and sample("lfr_equity_min_false_alerts", mine) == 10
        fleet = {"window": "fleet", "deployment_id": ""}
        assert sample("lfr_equity_false_alerts", {**fleet, "dimension": "sex", "group": "male"}) == 1
        assert sample("lfr_equity_reference_share", {**fleet, "dimension": "ethnicity", "group": "IC3"}) == 0.042
        labels = {"deployment_id": deployment_id, "dimension": "ethnicity", "group": "IC3"}
        assert sample("lfr_false_alerts_by_group_total", labels) == 1
        assert sample("lfr_false_alerts_by_group_withdrawn_total", {**labels, "group": "IC1"}) == 0  # started at 0
        # The deployment's false-alert budget, from its record: what LfrFalseAlertRateHigh holds its vans to.
        assert sample("lfr_false_alerts_per_face_scanned_limit", {"deployment_id": deployment_id}) == 1 / 1000

    await eventually(measured, timeout_s=10)

    # A supervisor finds it was the subject: the counts move from false to true, none doubles.
    corrected = await supervisor(
        "adjudicate", raised.alert_id, pb.ADJUDICATION_OUTCOME_TRUE, "Sgt 9", "", "ID checked: it was him",
        false.alert.revision,
    )  # fmt: skip
    assert corrected.alert.adjudication.perceived_ethnicity == "IC3"  # the perception stays
    stats = await _stats(platform, deployment_id)
    assert {k: v for k, v in stats.items() if "perceived" in k} == {
        "stats:perceived_false:sex:male": 0,
        "stats:perceived_false:ethnicity:IC3": 0,
        "stats:perceived_true:sex:male": 1,
        "stats:perceived_true:ethnicity:IC3": 1,
    }
    assert await _fleet_window(platform, day) == {"sex:male": 0, "ethnicity:IC3": 0}
    labels = {"deployment_id": deployment_id, "dimension": "ethnicity", "group": "IC3"}
    assert REGISTRY.get_sample_value("lfr_false_alerts_by_group_withdrawn_total", labels) == 1

    # Recorded on the adjudication topic; the audit trail says a perception was recorded, never which.
    events = decoded(ALERTS_ADJUDICATED, await read(platform, ALERTS_ADJUDICATED, count=2, settle_s=0.5))
    assert [e.adjudication.perceived_ethnicity for e in events] == ["IC3", "IC3"]
    audit = decoded(AUDIT_RECORDED, await read(platform, AUDIT_RECORDED, count=3, settle_s=0.5))
    assert [a.event for a in audit] == ["alert.refused", "alert.adjudicated", "alert.corrected"]
    assert audit[0].details["reason"] == "invalid" and "IC7" not in audit[0].details["message"]
    assert list(audit[1].details["perceived_recorded"]) == ["ethnicity", "sex"]
    assert "perceived_changed" not in audit[2].details  # the outcome was corrected, not the perception
    text = " ".join(str(a.details) for a in audit[1:])
    assert "IC3" not in text and "male" not in text
