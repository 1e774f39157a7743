"""The equity monitor's fleet window, without I/O: what a decision adds to which capture day, and the
days a window spans (by the clock, never by a key's expiry)."""

import dataclasses
from datetime import UTC, datetime

from lfr_alert.adjudication import ADJUDICATION, DecisionInput, decide
from lfr_alert.alerting import Alert
from lfr_alert.monitor import fleet_counts, window_days
from lfr_platform.equity import EquityPolicy

POLICY = EquityPolicy(
    reference_shares={"sex": {"female": 0.5, "male": 0.5}}, p_value=0.01, min_false_alerts=5, window_days=3
)
CAPTURED = datetime(2026, 12, 3, 23, 59, 30, tzinfo=UTC).timestamp()
LISTS = {"sex": ("female", "male"), "ethnicity": ("IC1", "IC3")}


def _alert() -> Alert:
    return Alert(
        alert_id="a1", deployment_id="dep-1", van_id="van-1", camera_id="cam-1", subject_id="S1", category="wanted",
        score=0.8, threshold=0.69, model_id="m", match_count=1, best_match_id="x", entry_id="e",
        first_captured_at=CAPTURED, last_seen_at=CAPTURED, raised_at=CAPTURED + 1, updated_at=CAPTURED + 1, revision=1,
    )  # fmt: skip


def _decide(alert, value, perceived, **options):
    d = DecisionInput(
        step=ADJUDICATION, value=value, officer="PC 1", recorded_by="t", role="supervisor", at=CAPTURED + 60,
        may_correct=True, perceived=perceived, perceived_lists=LISTS, **options,
    )  # fmt: skip
    return decide(alert, d)


def test_a_false_alert_counts_on_its_capture_day_and_a_correction_takes_it_back_there():
    first = _decide(_alert(), "false", {"sex": "male", "ethnicity": "IC3"})
    day = fleet_counts(first, POLICY)
    assert (day.day, day.counts) == ("2026-12-03", {"sex:male": 1, "ethnicity:IC3": 1})
    # Kept until the longest window has passed the day: its start + (3 + 1) days.
    assert day.keep_until == datetime(2026, 12, 7, tzinfo=UTC).timestamp()
    corrected = _decide(first.alert, "true", {}, correction_reason="it was him", revision=2)
    assert fleet_counts(corrected, POLICY).counts == {"sex:male": -1, "ethnicity:IC3": -1}
    assert fleet_counts(_decide(_alert(), "true", {"sex": "male"}), POLICY) is None  # only false alerts
    assert fleet_counts(dataclasses.replace(first), None) is None  # a deployment without the equity block


def test_a_window_spans_its_days_up_to_today():
    assert window_days(CAPTURED, 3) == ["2026-12-03", "2026-12-02", "2026-12-01"]
