"""alert over the real broker and Redis: one alert per subject per camera per window."""

import time

import pytest
import redis.asyncio as aioredis

from lfr_alert.app import build
from lfr_alert.settings import AlertSettings
from lfr_contracts import ALERTS_RAISED, MATCHES_FOUND, dead_letter_topic
from lfr_platform import sealing
from lfr_platform.registry import RedisKeys
from lfr_testing.kafka import decoded, produce, read
from lfr_testing.messages import match_record
from lfr_testing.services import running, seed_deployment

pytestmark = pytest.mark.integration


_match = match_record


async def test_repeat_matches_fold_into_one_alert_per_subject_and_camera(platform):
    deployment_id, key = await seed_deployment(platform)
    records = [
        _match(deployment_id, "cam-1", "S1", 1, 0.71, key=key),
        _match(deployment_id, "cam-1", "S1", 2, 0.83, key=key),
        _match(deployment_id, "cam-1", "S1", 2, 0.83, key=key),  # the same match delivered twice
        _match(deployment_id, "cam-1", "S1", 3, 0.75, key=key),
        _match(deployment_id, "cam-2", "S1", 4, 0.70, key=key),  # another camera: another alert
        _match(deployment_id, "cam-1", "S2", 5, 0.90, key=key),  # another person: another alert
    ]
    await produce(platform, MATCHES_FOUND, records)
    async with running(build(platform, AlertSettings(http_port=0, grpc_port=0))):
        alerts = decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=5, settle_s=1))
    by_id: dict[str, list] = {}
    for alert in alerts:
        by_id.setdefault(alert.alert_id, []).append(alert)
    assert len(by_id) == 3
    s1_cam1 = next(v for v in by_id.values() if v[0].subject_id == "S1" and v[0].camera.camera_id == "cam-1")
    assert [a.revision for a in s1_cam1] == [1, 2, 3]  # the re-delivery publishes nothing, counts nothing
    final = s1_cam1[-1]
    assert (final.match_count, final.score) == (3, pytest.approx(0.83))
    assert sealing.unseal(key, final.probe_crop, deployment_id) == b"crop-2"  # sealed on the bus
    assert final.best_match_id.endswith("/2/0") and final.threshold == pytest.approx(0.69)
    assert final.raised_at.ToNanoseconds() >= final.captured_at.ToNanoseconds()


async def test_each_revision_is_published_once_whatever_comes_again(platform):
    """Issue 25 (6): a match folded whose revision was never recorded as published (alert crashed
    between the fold and the broker, or between the broker and Redis) publishes the alert's current
    revision once when it comes again, however many of its matches come again in one batch; once
    recorded, the same matches are replays."""
    deployment_id, key = await seed_deployment(platform)
    now = time.time()
    first, second = (_match(deployment_id, "cam-1", "S1", n, 0.7 + n / 100, now - 10 + n, key=key) for n in (1, 2))
    settings = AlertSettings(http_port=0, grpc_port=0, max_match_age_s=600)
    async with running(build(platform, settings)):
        await produce(platform, MATCHES_FOUND, [first, second])
        before = decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=2))
    assert [a.revision for a in before] == [1, 2]
    # The crash: Redis holds the fold, not its publication.
    client = aioredis.from_url(platform.redis_url)
    keys = RedisKeys(platform.redis_prefix)
    await client.hdel(keys.alert(before[0].alert_id), "published_revision")
    await client.delete(keys.matches_announced(deployment_id))
    sentinel = _match(deployment_id, "cam-1", "S2", 3, 0.9, now, key=key)  # the sign that all were read
    async with running(build(platform, settings)):
        await produce(platform, MATCHES_FOUND, [first, second, first, sentinel])
        after = decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=4))
        assert after[:2] == before and after[3].subject_id == "S2"
        assert after[2] == before[1]  # revision 2 again, once, byte for byte the same
        await produce(platform, MATCHES_FOUND, [second])
        letters = decoded(dead_letter_topic("alert"), await read(platform, dead_letter_topic("alert"), count=1))
    assert [d.reason for d in letters] == ["replayed_match"]
    assert len(decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=4, settle_s=1))) == 4
    await client.aclose()


async def test_a_match_captured_after_the_window_raises_a_new_alert(platform):
    deployment_id, key = await seed_deployment(platform)
    t = time.time()
    async with running(build(platform, AlertSettings(http_port=0, grpc_port=0, window_s=1.0))):
        await produce(platform, MATCHES_FOUND, [_match(deployment_id, "cam-1", "S1", 1, 0.8, t, key=key)])
        first = decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=1))
        # Captured 1.5 s later, processed at once: the window is capture time.
        await produce(platform, MATCHES_FOUND, [_match(deployment_id, "cam-1", "S1", 2, 0.8, t + 1.5, key=key)])
        both = decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=2))
    assert first[0].revision == 1 and both[1].revision == 1 and both[1].alert_id != first[0].alert_id


async def test_fold_by_capture_time_two_passes_in_a_backlog_are_two_alerts(platform):
    """Failure 1 of the bus probe: with alert stopped (a backlog), one person passed twice, 142 s
    apart in capture time, and resumed alert folded both into one alert. The window is capture time."""
    deployment_id, key = await seed_deployment(platform)
    t = time.time() - 300
    first_pass = [_match(deployment_id, "cam-1", "S1", i, 0.8, t + 0.2 * i, key=key) for i in (1, 2, 3)]
    second_pass = [_match(deployment_id, "cam-1", "S1", i, 0.8, t + 142 + 0.2 * i, key=key) for i in (4, 5)]
    await produce(platform, MATCHES_FOUND, first_pass + second_pass)  # before alert runs: a backlog
    async with running(build(platform, AlertSettings(http_port=0, grpc_port=0))):  # a 60 s window
        alerts = decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=5))
    passes = {}
    for alert in alerts:
        passes[alert.alert_id] = alert
    assert len(passes) == 2, [(a.alert_id, a.match_count) for a in alerts]
    assert sorted(a.match_count for a in passes.values()) == [2, 3]


async def test_matches_of_unknown_deployments_and_without_subject_are_dead_lettered(platform):
    deployment_id, key = await seed_deployment(platform)
    await produce(
        platform,
        MATCHES_FOUND,
        [
            _match("dep-unknown-one", "cam-1", "S1", 1, 0.8, key=key),
            _match(deployment_id, "cam-1", "", 2, 0.8, key=key),
        ],
    )
    async with running(build(platform, AlertSettings(http_port=0, grpc_port=0))):
        letters = decoded(dead_letter_topic("alert"), await read(platform, dead_letter_topic("alert"), count=2))
    assert [d.reason for d in letters] == ["unknown_deployment", "invalid_match"]


async def test_one_alert_per_pass_even_when_the_tracker_split_it(platform):
    """Later shots of a pass fold into its alert, and so does a new track of the same subject on
    the same camera soon after (the tracker lost the person mid-pass: a turned head, someone in
    front), as on the crowd clip. A pass after a longer gap is a new alert."""
    deployment_id, key = await seed_deployment(platform)
    t = time.time()
    async with running(build(platform, AlertSettings(http_port=0, grpc_port=0, window_s=2.0))):
        await produce(
            platform,
            MATCHES_FOUND,
            [
                match_record(deployment_id, "cam-1", "S1", 1, 0.71, t, track_id="d:1", key=key),
                match_record(deployment_id, "cam-1", "S1", 2, 0.80, t + 0.4, track_id="d:1", key=key),  # better
                match_record(deployment_id, "cam-1", "S1", 3, 0.75, t + 1.2, track_id="d:7", key=key),  # split
            ],
        )
        one_pass = decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=3))
        # The person has gone; they come back 10 s later (capture time).
        later = match_record(deployment_id, "cam-1", "S1", 9, 0.77, t + 11, track_id="d:9", key=key)
        await produce(platform, MATCHES_FOUND, [later])
        both = decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=4))
    assert len({a.alert_id for a in one_pass}) == 1
    assert [a.revision for a in one_pass] == [1, 2, 3] and one_pass[-1].match_count == 3
    assert one_pass[-1].score == pytest.approx(0.8) and one_pass[-1].track_id == "d:1"
    later = both[-1]
    assert later.alert_id != one_pass[0].alert_id and later.revision == 1 and later.track_id == "d:9"


async def test_forged_replayed_and_unknown_subject_matches_raise_no_alert(platform):
    deployment_id, key = await seed_deployment(platform)
    other_id, other_key = await seed_deployment(platform)
    closed_id, closed_key = await seed_deployment(platform)
    client = aioredis.from_url(platform.redis_url)
    await client.hset(RedisKeys(platform.redis_prefix).deployment(closed_id), "status", "closed")
    await client.aclose()
    skipped_before = _skipped(platform, "deployment_closed")
    forged = [
        _match(closed_id, "cam-1", "S1", 0, 0.99, key=closed_key),  # authentic, but its deployment is closed
        _match(deployment_id, "cam-1", "S1", 1, 0.99),  # produced by someone without the key
        _match(deployment_id, "cam-1", "S1", 2, 0.99, key=other_key),  # another deployment's match, replayed
        _match(deployment_id, "cam-1", "NOT-ENROLLED", 3, 0.99, key=key),  # authentic, not on the watchlist
        _match(deployment_id, "cam-1", "S1", 4, 0.99, key=key),  # the only genuine one
    ]
    await produce(platform, MATCHES_FOUND, forged)
    async with running(build(platform, AlertSettings(http_port=0, grpc_port=0))):
        letters = decoded(dead_letter_topic("alert"), await read(platform, dead_letter_topic("alert"), count=3))
        alerts = decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=1, settle_s=1.0))
    assert [d.reason for d in letters] == ["unauthenticated_match", "unauthenticated_match", "subject_not_enrolled"]
    assert [(a.subject_id, a.match_count) for a in alerts] == [("S1", 1)] and other_id != deployment_id
    assert alerts[0].camera.deployment_id == deployment_id
    assert (
        _skipped(platform, "deployment_closed") == skipped_before + 1
    )  # a normal end: skipped and counted, not alerted


def _skipped(platform, reason: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "lfr_messages_skipped_total", {"topic": MATCHES_FOUND.name(platform.topic_prefix), "reason": reason}
    )
    return value or 0.0


async def test_a_replayed_match_is_dead_lettered_not_a_new_alert(platform):
    """Bus failure 2: a genuine MatchFound produced again after the fold window raised a new alert
    with the best_match_id of an earlier one. Every match is announced once; an old one never."""
    deployment_id, key = await seed_deployment(platform)
    now = time.time()
    genuine = _match(deployment_id, "cam-1", "S1", 1, 0.8, now - 30, key=key)
    settings = AlertSettings(http_port=0, grpc_port=0, window_s=1.0, max_match_age_s=600)
    async with running(build(platform, settings)):
        await produce(platform, MATCHES_FOUND, [genuine])
        [raised] = decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=1))
        moved = MATCHES_FOUND.decode(genuine[1])
        moved.captured_at.FromNanoseconds(int((now - 5) * 1e9))  # its capture time changed: not signed so
        stale = _match(deployment_id, "cam-1", "S1", 2, 0.8, now - 1200, key=key)  # older than the age limit
        later = _match(deployment_id, "cam-1", "S1", 3, 0.8, now, key=key)  # genuine: the sign all were read
        await produce(platform, MATCHES_FOUND, [genuine, (genuine[0], moved.SerializeToString()), stale, later])
        letters = decoded(dead_letter_topic("alert"), await read(platform, dead_letter_topic("alert"), count=3))
        alerts = decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=2))
    assert [d.reason for d in letters] == ["replayed_match", "unauthenticated_match", "stale_match"]
    assert alerts[0] == raised and alerts[1].best_match_id == MATCHES_FOUND.decode(later[1]).match_id
    assert alerts[1].alert_id != raised.alert_id and alerts[1].revision == 1


async def test_an_alert_carries_the_runner_up_and_margin_of_its_best_match_signed(platform):
    """Issue 18 (lookalikes): each revision names the best other subject for its best match and the
    margin between the two scores, follows the best match as it changes, and is signed with them."""
    from lfr_platform.signing import verify_alert
    from lfr_testing.services import alert_public_key

    deployment_id, key = await seed_deployment(platform)
    t = time.time()
    records = [
        _match(deployment_id, "cam-1", "S1", 1, 0.75, t, key=key, runner_up="S2", runner_up_score=0.60),
        _match(deployment_id, "cam-1", "S1", 2, 0.82, t + 0.2, key=key, runner_up="S9", runner_up_score=0.70),
        _match(deployment_id, "cam-1", "S1", 3, 0.78, t + 0.4, key=key, runner_up="S2", runner_up_score=0.77),
        _match(deployment_id, "cam-2", "S1", 4, 0.80, t, key=key),  # a watchlist of one: no runner-up
    ]
    await produce(platform, MATCHES_FOUND, records)
    async with running(build(platform, AlertSettings(http_port=0, grpc_port=0))):
        alerts = decoded(ALERTS_RAISED, await read(platform, ALERTS_RAISED, count=4))
    cam1 = [a for a in alerts if a.camera.camera_id == "cam-1"]
    assert [(a.runner_up_subject_id, round(a.runner_up_score, 2), round(a.margin, 2)) for a in cam1] == [
        ("S2", 0.60, 0.15),
        ("S9", 0.70, 0.12),  # the better match brought its own runner-up
        ("S9", 0.70, 0.12),  # a lesser match changes neither
    ]
    assert not any(a.held_for_supervisor or a.hold_reason for a in alerts)  # no min_margin: never held
    [alone] = [a for a in alerts if a.camera.camera_id == "cam-2"]
    assert alone.runner_up_subject_id == "" and not alone.HasField("margin")
    public = await alert_public_key(platform, deployment_id)
    assert all(verify_alert(public, a) for a in alerts)
    altered = type(cam1[-1])()
    altered.CopyFrom(cam1[-1])
    altered.runner_up_score = 0.50  # a wider margin than the match had: the signature covers it
    assert not verify_alert(public, altered)
