"""The deployment record's codec: what Redis holds, read back whole; an older record migrated once,
logged and counted; a field unknown or malformed refused with its name (no Redis needed)."""

import logging

import pytest
from prometheus_client import REGISTRY

from lfr_platform.deployment_record import (
    FIELD,
    RECORD_VERSION,
    DeploymentRecord,
    RecordInvalid,
    fields,
    increments,
    kept_in_tombstone,
    lost_record,
    new_deployment_record,
)
from lfr_platform.equity import EquityPolicy

EQUITY = EquityPolicy({"sex": {"female": 0.5, "male": 0.5}}, p_value=0.001, min_false_alerts=10, window_days=90)


def _new(deployment_id: str = "dep-0123456789abcdef", **overrides) -> DeploymentRecord:
    values = dict(
        name="Op Test",
        purpose="wanted persons",
        authorising_officer="Supt A",
        location="High St",
        planned_start=100.0,
        planned_end=3700.0,
        cameras=[("van-1", "cam-1")],
        threshold=0.69,
        threshold_floor=0.66,
        threshold_override_reason="",
        model_id="sface",
        watchlist_size_limit=100,
        created_at=90.0,
        created_by="officer-1",
        alert_public_key=b"\x01\xff",
        where="crime_hotspot",
        urgent=True,
        ratify_by=3690.0,
        perceived_groups={"sex": ["female", "male"]},
        equity=EQUITY,
        false_alert_budget=0.001,
        prediction={"watchlist_size": 150, "per_face": 1e-4},
        operating_point={"threshold_source": "derived", "largest_list": float("inf")},
    )
    return new_deployment_record(deployment_id, **(values | overrides))


def _migrated() -> float:
    return REGISTRY.get_sample_value("lfr_deployment_records_migrated_total", {"from_version": "0"}) or 0.0


def test_a_record_reads_back_as_it_was_written_with_its_version_and_its_stats():
    stored = _new().to_redis()
    assert stored["version"] == str(RECORD_VERSION) and stored["urgent"] == "1" and stored["threshold"] == "0.69"
    assert "ratified_by" not in stored and "closed_at" not in stored  # only what was set
    raw = {k.encode(): v.encode() for k, v in stored.items()} | {b"stats:alerts@van-1": b"3"}
    record = DeploymentRecord.from_redis("dep-0123456789abcdef", raw, now=50.0)
    assert record.model_dump(exclude={"state", "stats"}) == _new().model_dump(exclude={"state", "stats"})
    assert (record.state, record.stats, record.migrated_from) == ("planned", {"alerts@van-1": 3}, None)
    assert record.cameras[0].van_id == "van-1" and record.equity == EQUITY and not record.reviewed
    assert record.operating_point["largest_list"] == float("inf")
    assert DeploymentRecord.from_redis(record.deployment_id, stored, now=200.0).state == "active"


def test_a_record_from_before_the_version_is_read_with_defaults_logged_and_counted_once(caplog):
    """As the janitor meets one after an upgrade: no created_by, budget, operating point or entries."""
    old = {
        k: v
        for k, v in _new("dep-old0000000000001").to_redis().items()
        if k not in ("version", "created_by", "false_alert_budget", "operating_point", "prediction")
    }
    before = _migrated()
    with caplog.at_level(logging.WARNING, logger="lfr_platform.deployment_record"):
        record = DeploymentRecord.from_redis("dep-old0000000000001", old)
        again = DeploymentRecord.from_redis("dep-old0000000000001", old)
    assert (record.migrated_from, again.migrated_from, record.version) == (0, 0, RECORD_VERSION)
    assert (record.created_by, record.false_alert_budget, record.operating_point, record.reviewed_entries) == (
        "",
        None,
        None,
        0,
    )
    [line] = [r for r in caplog.records if "before record version" in r.getMessage()]
    assert "created_by, prediction, operating_point, false_alert_budget" in line.getMessage()
    assert line.deployment_id == "dep-old0000000000001"
    assert _migrated() == before + 1  # once per record, however often it is read


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"threshold": "high"}, "threshold", "is malformed: Input should be a valid number"),
        ({"urgent": "yes"}, "urgent", "is malformed: must be 1 or 0"),
        ({"cameras": "[{"}, "cameras", "is malformed: is not its JSON"),
        ({"equity": "{}"}, "equity", "is malformed: is not its JSON (KeyError"),
        ({"status": "paused"}, "status", "is malformed: Input should be 'open', 'closed', 'expired' or 'lost'"),
        ({"stats:alerts": "many"}, "stats:alerts", "is malformed"),
        ({"version": "2"}, "version", "is 2: written by a newer release"),
        ({"deployment_id": "dep-other"}, "deployment_id", "is 'dep-other', another deployment's"),
    ],
)
def test_a_malformed_value_is_refused_with_the_field_named(change, field, problem):
    with pytest.raises(RecordInvalid, match="the record of deployment 'dep-0123456789abcdef' cannot be read") as e:
        DeploymentRecord.from_redis("dep-0123456789abcdef", _new().to_redis() | change)
    assert e.value.field == field and f"field {field!r} {problem}" in str(e.value)


def test_an_unknown_field_is_left_unread_logged_and_counted_once(caplog):
    ignored = REGISTRY.get_sample_value("lfr_deployment_record_fields_ignored_total", {"field": "surname"}) or 0
    stored = _new().to_redis() | {"surname": "x"}
    for _ in range(2):
        record = DeploymentRecord.from_redis("dep-0123456789abcdef", stored)
    assert record.deployment_id == "dep-0123456789abcdef" and not hasattr(record, "surname")
    assert REGISTRY.get_sample_value("lfr_deployment_record_fields_ignored_total", {"field": "surname"}) == ignored + 1
    assert [r.getMessage() for r in caplog.records].count(
        "deployment record field 'surname' is not one this release knows (a newer release's?): left unread"
    ) == 1


def test_a_record_without_its_identity_is_refused_with_the_missing_field_named():
    for missing in ("deployment_id", "status"):
        stored = {k: v for k, v in _new().to_redis().items() if k != missing}
        with pytest.raises(RecordInvalid, match=f"field '{missing}' is missing"):
            DeploymentRecord.from_redis("dep-0123456789abcdef", stored)


def test_partial_updates_name_checked_fields_encoded_as_the_record_stores_them():
    assert fields(ratified_by="Ch Insp B", ratified_at=12.5, deletion={"a": 1}) == {
        "ratified_by": "Ch Insp B",
        "ratified_at": "12.5",
        "deletion": '{"a": 1}',
    }
    assert increments(rejected_images=2) == {"rejected_images": 2} and FIELD.enrolled_images == "enrolled_images"
    with pytest.raises(TypeError, match="'ratifed_by' is not a field"):
        fields(ratifed_by="x")
    with pytest.raises(TypeError, match="'status'"):
        fields(status="paused")
    with pytest.raises(TypeError, match="not a count"):
        increments(name=1)
    with pytest.raises(AttributeError, match="not a field"):
        _ = FIELD.enroled_images


def test_a_lost_deployment_and_a_tombstone_read_as_records():
    lost = DeploymentRecord.from_redis("dep-lost000000000001", lost_record("dep-lost000000000001", 5.0))
    assert (lost.state, lost.name, lost.closed_by, lost.migrated_from) == ("lost", "(lost)", "system", None)
    tombstone = {k: v for k, v in _new().to_redis().items() if kept_in_tombstone(k)}
    assert "version" in tombstone and kept_in_tombstone("stats:alerts") and not kept_in_tombstone("reviewed_entries")
    assert DeploymentRecord.from_redis("dep-0123456789abcdef", tombstone).migrated_from is None
