"""The decision rules, without I/O: order, repeats, corrections and the counts they move."""

import dataclasses

import pytest

from lfr_alert.adjudication import (
    ADJUDICATION,
    ENGAGEMENT,
    OUTCOME,
    DecisionInput,
    DecisionRefused,
    count_changes,
    decide,
    perceived_deltas,
)
from lfr_alert.alerting import Alert, hold_reason


def _alert(**fields) -> Alert:
    base = dict(
        alert_id="a1", deployment_id="dep-1", van_id="van-1", camera_id="cam-1", subject_id="S1", category="wanted",
        score=0.8, threshold=0.69, model_id="m", match_count=1, best_match_id="x", entry_id="e",
        first_captured_at=1.0, last_seen_at=1.0, raised_at=2.0, updated_at=2.0, revision=1,
    )  # fmt: skip
    return Alert(**{**base, **fields})


def _d(
    step, value, *, may_correct=False, reason="", officer="PC 1", detail="", revision=0, may_decide_held=False
) -> DecisionInput:
    return DecisionInput(
        step=step, value=value, officer=officer, recorded_by="token-1", role="officer", at=10.0,
        may_correct=may_correct, detail=detail, correction_reason=reason, revision=revision,
        may_decide_held=may_decide_held,
    )  # fmt: skip


def test_the_steps_follow_the_glossary_and_each_is_a_new_revision():
    alert = _alert()
    for step, value, state in [
        (ADJUDICATION, "true", "adjudicated"),
        (ENGAGEMENT, "engaged", "engaged"),
        (OUTCOME, "arrest", "resolved"),
    ]:
        change = decide(alert, _d(step, value))
        assert change is not None and change.alert.state == state and not change.correction
        assert change.alert.revision == alert.revision + 1 and change.alert.updated_at == 10.0
        alert = change.alert
    assert (alert.outcome, alert.engaged, alert.final_outcome) == ("true", True, "arrest")
    assert alert.adjudication.officer == "PC 1" and alert.resolution.recorded_by == "token-1"


def test_a_repeat_is_none_and_a_change_is_refused_unless_corrected_with_a_reason():
    decided = decide(_alert(), _d(ADJUDICATION, "true")).alert
    assert decide(decided, _d(ADJUDICATION, "true", officer="PC 2")) is None
    with pytest.raises(DecisionRefused) as conflict:
        decide(decided, _d(ADJUDICATION, "false"))
    assert conflict.value.reason == "conflict"
    with pytest.raises(DecisionRefused) as no_reason:
        decide(decided, _d(ADJUDICATION, "false", may_correct=True))
    assert no_reason.value.reason == "invalid"
    with pytest.raises(DecisionRefused) as unnamed:  # which revision does it correct?
        decide(decided, _d(ADJUDICATION, "false", may_correct=True, reason="wrong person"))
    assert unnamed.value.reason == "invalid" and "names the revision" in unnamed.value.message
    with pytest.raises(DecisionRefused) as stale:  # another decision came since the supervisor looked
        decide(decided, _d(ADJUDICATION, "false", may_correct=True, reason="wrong person", revision=1))
    assert stale.value.reason == "conflict" and "changed since revision 1" in stale.value.message
    corrected = decide(decided, _d(ADJUDICATION, "false", may_correct=True, reason="wrong person", revision=2))
    assert corrected.correction and corrected.previous == "true" and corrected.alert.state == "adjudicated"
    assert count_changes(ADJUDICATION, corrected.previous, "false") == {"adjudicated_false": 1, "adjudicated_true": -1}


@pytest.mark.parametrize(
    "alert_fields, decision, reason",
    [
        ({}, _d(ENGAGEMENT, "engaged"), "precondition"),
        ({}, _d(OUTCOME, "arrest"), "precondition"),
        ({"state": "not_engaged", "outcome": "true", "engaged": False}, _d(OUTCOME, "arrest"), "precondition"),
        ({}, _d(ADJUDICATION, "maybe"), "invalid"),
        ({}, _d(ADJUDICATION, "true", officer=" "), "invalid"),
        ({}, _d(ADJUDICATION, "true", officer="x" * 201), "invalid"),
        ({}, _d(ADJUDICATION, "true", may_correct=True, reason="nothing to correct"), "invalid"),
        ({"state": "engaged", "outcome": "true", "engaged": True}, _d(OUTCOME, "other"), "invalid"),
    ],
)
def test_what_is_refused_and_why(alert_fields, decision, reason):
    with pytest.raises(DecisionRefused) as refused:
        decide(_alert(**alert_fields), decision)
    assert refused.value.reason == reason and refused.value.message


def test_an_engagement_with_a_final_outcome_cannot_change():
    resolved = _alert(state="resolved", outcome="true", engaged=True, final_outcome="arrest")
    with pytest.raises(DecisionRefused) as refused:
        decide(resolved, _d(ENGAGEMENT, "not_engaged", may_correct=True, reason="x"))
    assert refused.value.reason == "conflict"


def test_a_runner_up_within_the_min_margin_holds_and_says_why():
    assert hold_reason(0.73, "S2", 0.71, 0.05) == (
        "runner-up S2 scores 0.710, within 0.020 of 0.730 (the policy's min_margin 0.05): a supervisor decides"
    )
    assert hold_reason(0.73, "S2", 0.60, 0.05) == ""  # a clear margin
    assert hold_reason(0.73, "S2", 0.72, 0.0) == ""  # no min_margin: never held
    assert hold_reason(0.73, "", 0.0, 0.05) == ""  # no other subject on the watchlist


def test_a_held_alert_is_adjudicated_by_a_supervisor_only_then_anyone_may_go_on():
    held = _alert(held=True, hold_reason="runner-up S2 scores 0.790, within 0.010 of 0.800", runner_up_subject_id="S2")
    with pytest.raises(DecisionRefused) as refused:
        decide(held, _d(ADJUDICATION, "true"))
    assert refused.value.reason == "held"
    assert "held for a supervisor" in refused.value.message and "runner-up S2" in refused.value.message
    adjudicated = decide(held, _d(ADJUDICATION, "false", may_decide_held=True)).alert
    assert adjudicated.outcome == "false" and adjudicated.held  # the hold stays on the record
    assert decide(adjudicated, _d(ADJUDICATION, "false")) is None  # a repeat changes nothing
    assert decide(adjudicated, _d(ENGAGEMENT, "not_engaged")).alert.state == "not_engaged"


LISTS = {"sex": ("female", "male"), "ethnicity": ("IC1", "IC2", "IC3", "IC4", "IC5", "IC6", "IC9")}


def _adjudicate(value, perceived=None, **options) -> DecisionInput:
    return dataclasses.replace(_d(ADJUDICATION, value, **options), perceived=perceived or {}, perceived_lists=LISTS)


def test_a_perceived_group_is_recorded_from_the_deployments_lists_only():
    change = decide(_alert(), _adjudicate("false", {"sex": "male", "ethnicity": "IC3"}))
    assert (change.alert.perceived_sex, change.alert.perceived_ethnicity) == ("male", "IC3")
    assert perceived_deltas(change) == {("false", "sex", "male"): 1, ("false", "ethnicity", "IC3"): 1}
    with pytest.raises(DecisionRefused) as outside:
        decide(_alert(), _adjudicate("false", {"ethnicity": "IC7"}))
    message = outside.value.message
    assert outside.value.reason == "invalid" and "IC1, IC2, IC3, IC4, IC5, IC6, IC9" in message
    assert "perceived_groups.ethnicity" in message and "IC7" not in message  # the list named, the value not kept
    with pytest.raises(DecisionRefused) as unlisted:  # a deployment created before the policy listed any
        decide(_alert(), dataclasses.replace(_adjudicate("true", {"sex": "female"}), perceived_lists={}))
    assert unlisted.value.reason == "invalid" and "lists no perceived sex" in unlisted.value.message


def test_an_undetermined_alert_records_a_perception_but_counts_none():
    change = decide(_alert(), _adjudicate("undetermined", {"sex": "female"}))
    assert change.alert.perceived_sex == "female" and perceived_deltas(change) == {}


def test_a_repeat_keeps_the_perception_and_changing_it_is_a_supervisors_correction():
    decided = decide(_alert(), _adjudicate("false", {"ethnicity": "IC3"})).alert
    assert decide(decided, _adjudicate("false")) is None  # nothing given: what is recorded stays
    assert decide(decided, _adjudicate("false", {"ethnicity": "IC3"})) is None
    with pytest.raises(DecisionRefused) as conflict:
        decide(decided, _adjudicate("false", {"ethnicity": "IC1"}))
    assert conflict.value.reason == "conflict" and "'false, perceived ethnicity IC3' by PC 1" in conflict.value.message
    with pytest.raises(DecisionRefused) as added:  # adding one later changes the record too
        decide(decided, _adjudicate("false", {"sex": "male"}))
    assert added.value.reason == "conflict"
    regrouped = decide(
        decided, _adjudicate("false", {"ethnicity": "IC1"}, may_correct=True, reason="misrecorded", revision=2)
    )
    assert regrouped.correction and regrouped.previous == "false" and regrouped.alert.perceived_ethnicity == "IC1"
    # The group moves, the outcome's count does not.
    assert perceived_deltas(regrouped) == {("false", "ethnicity", "IC3"): -1, ("false", "ethnicity", "IC1"): 1}
    assert count_changes(ADJUDICATION, regrouped.previous, "false") == {}


def test_correcting_false_to_true_moves_the_group_count_never_doubles_it():
    decided = decide(_alert(), _adjudicate("false", {"sex": "male", "ethnicity": "IC3"})).alert
    corrected = decide(decided, _adjudicate("true", may_correct=True, reason="ID checked: it was him", revision=2))
    assert (corrected.alert.outcome, corrected.alert.perceived_ethnicity) == ("true", "IC3")  # the perception stays
    assert perceived_deltas(corrected) == {
        ("false", "sex", "male"): -1,
        ("false", "ethnicity", "IC3"): -1,
        ("true", "sex", "male"): 1,
        ("true", "ethnicity", "IC3"): 1,
    }
    back = decide(corrected.alert, _adjudicate("undetermined", may_correct=True, reason="unsure", revision=3))
    assert perceived_deltas(back) == {("true", "sex", "male"): -1, ("true", "ethnicity", "IC3"): -1}
