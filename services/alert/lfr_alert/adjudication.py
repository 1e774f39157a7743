"""The officers' decisions on an alert, free of I/O: which step may follow which, what a repeat is,
and when a decision may be changed.

raised -> adjudicated (true, false, undetermined) -> engaged | not_engaged -> resolved (final outcome)

- A decision is idempotent by alert id: the same decision again is a no-op (`decide` returns None).
- A different decision for a step already decided is a conflict, refused unless it is a correction:
  made by a supervisor, with a reason, on the revision it corrects (the alert unchanged since the
  supervisor saw it), and audited. A first decision carries no correction reason.
- A step out of order is refused with what must come first.
- An alert held for a supervisor (a runner-up within the deployment's min_margin) is adjudicated by a
  supervisor only: an officer's adjudication is refused with the hold's reason. Its later steps
  (engagement, final outcome) are anyone's who may decide.
- An adjudication may carry the officer's perceived sex and ethnicity of the person, each a value of
  the deployment's lists (any other is refused, naming the list). A value not given keeps the one
  recorded; changing a recorded one is a correction, as changing the outcome is. They are counted
  per group (true and false alerts), a correction moving the counts (`perceived_deltas`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from lfr_alert.alerting import ADJUDICATED, ENGAGED, NOT_ENGAGED, RAISED, RESOLVED, Alert, Decision
from lfr_platform.equity import COUNTED_OUTCOMES

ADJUDICATION, ENGAGEMENT, OUTCOME = "adjudication", "engagement", "outcome"
OUTCOMES = ("true", "false", "undetermined")
FINAL_OUTCOMES = ("arrest", "no_further_action", "safeguarding", "other")
MAX_OFFICER, MAX_NOTE = 200, 2000


class DecisionRefused(Exception):
    """`reason` is one of: invalid, precondition, conflict, permission, held."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class DecisionInput:
    step: str
    # adjudication: an OUTCOMES value; engagement: "engaged" or "not_engaged"; outcome: a FINAL_OUTCOMES value.
    value: str
    officer: str
    recorded_by: str
    role: str
    at: float
    may_correct: bool  # the role may correct a decision already recorded
    note: str = ""
    detail: str = ""  # the final outcome's free text
    correction_reason: str = ""
    revision: int = 0  # the alert's revision the decision was made on (0: not given)
    may_decide_held: bool = False  # the role may adjudicate an alert held for a supervisor
    # An adjudication's perceived groups, by dimension (only those given), and the deployment's lists.
    perceived: Mapping[str, str] = field(default_factory=dict)
    perceived_lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    alert: Alert  # as it is after the decision, revision + 1
    previous: str  # the value the step had before ("" when it was not decided)
    before: Alert | None = None  # the alert as it was

    @property
    def correction(self) -> bool:
        return bool(self.previous)


def _printable(text: str) -> bool:
    return text.isprintable()


def validate(d: DecisionInput) -> None:
    officer = d.officer.strip()
    if not officer:
        raise DecisionRefused("invalid", "officer is required: the name or number of the officer who decided")
    if len(officer) > MAX_OFFICER or not _printable(officer):
        raise DecisionRefused("invalid", f"officer must be at most {MAX_OFFICER} printable characters")
    for label, text in (("note", d.note), ("detail", d.detail), ("correction_reason", d.correction_reason)):
        if len(text) > MAX_NOTE:
            raise DecisionRefused("invalid", f"{label} is {len(text)} characters; at most {MAX_NOTE}")
    allowed = {
        ADJUDICATION: OUTCOMES,
        ENGAGEMENT: ("engaged", "not_engaged"),
        OUTCOME: FINAL_OUTCOMES,
    }.get(d.step)
    if allowed is None:
        raise DecisionRefused("invalid", f"unknown step {d.step!r}")
    if d.value not in allowed:
        raise DecisionRefused("invalid", f"{d.step} must be one of {', '.join(allowed)}, not {d.value or 'nothing'}")
    if d.step == OUTCOME and d.value == "other" and not d.detail.strip():
        raise DecisionRefused("invalid", "an 'other' outcome needs its detail: say what happened")
    for dimension, group in d.perceived.items():
        listed = d.perceived_lists.get(dimension, ())
        if d.step != ADJUDICATION:
            raise DecisionRefused("invalid", f"a perceived {dimension} is recorded with an adjudication only")
        if not listed:
            raise DecisionRefused(
                "invalid",
                f"perceived_{dimension} cannot be recorded: the deployment's policy lists no perceived {dimension}",
            )
        if group not in listed:
            # The value is not quoted back: the refusal is audited, and the trail keeps no perception.
            raise DecisionRefused(
                "invalid",
                f"perceived_{dimension} must be one of the deployment's list: {', '.join(listed)} "
                f"(the policy's perceived_groups.{dimension})",
            )


def decide(alert: Alert, d: DecisionInput) -> Change | None:
    """The alert after the decision, None for a repeat of what is recorded, or DecisionRefused."""
    validate(d)
    if d.revision and d.revision != alert.revision:
        raise DecisionRefused(
            "conflict",
            f"alert {alert.alert_id} has changed since revision {d.revision} (now {alert.revision}, "
            f"{alert.state}{', ' + alert.outcome if alert.outcome else ''}): look at it again before deciding",
        )
    decision = Decision(
        officer=d.officer.strip(),
        recorded_by=d.recorded_by,
        role=d.role,
        at=d.at,
        note=d.note.strip(),
        correction_reason=d.correction_reason.strip(),
    )
    if d.step == ADJUDICATION:
        current = alert.outcome
        perceived = {**alert.perceived, **d.perceived}  # a value not given keeps the one recorded
        if current == d.value and perceived == alert.perceived:
            return None
        if alert.held and not d.may_decide_held:
            raise DecisionRefused(
                "held",
                f"alert {alert.alert_id} is held for a supervisor, who alone may adjudicate it: {alert.hold_reason}",
            )
        groups = {f"perceived_{dimension}": perceived.get(dimension, "") for dimension in ("sex", "ethnicity")}
        if not current:
            _first(alert, d)
            return _changed(alert, "", state=ADJUDICATED, outcome=d.value, adjudication=decision, **groups)
        _correctable(alert, d, _adjudication_text(alert))
        return _changed(alert, current, outcome=d.value, adjudication=decision, **groups)
    if d.step == ENGAGEMENT:
        if alert.state == RAISED:
            raise DecisionRefused(
                "precondition", f"alert {alert.alert_id} is not adjudicated yet: adjudicate it before its engagement"
            )
        engaged = d.value == "engaged"
        current = "" if alert.engaged is None else ("engaged" if alert.engaged else "not_engaged")
        if current == d.value:
            return None
        if not current:
            _first(alert, d)
            return _changed(alert, "", state=ENGAGED if engaged else NOT_ENGAGED, engaged=engaged, engagement=decision)
        if alert.state == RESOLVED:
            raise DecisionRefused(
                "conflict",
                f"alert {alert.alert_id} has its final outcome ({alert.final_outcome}): an engagement with an "
                "outcome cannot be changed",
            )
        _correctable(alert, d, current)
        return _changed(alert, current, state=ENGAGED if engaged else NOT_ENGAGED, engaged=engaged, engagement=decision)
    # OUTCOME
    if alert.state in (RAISED, ADJUDICATED, NOT_ENGAGED):
        need = {
            RAISED: "it is not adjudicated yet",
            ADJUDICATED: "its engagement is not recorded yet",
            NOT_ENGAGED: "the person was not engaged",
        }[alert.state]
        raise DecisionRefused("precondition", f"alert {alert.alert_id} cannot have a final outcome: {need}")
    current = alert.final_outcome
    if current == d.value and alert.final_detail == d.detail.strip():
        return None
    if not current:
        _first(alert, d)
        return _changed(
            alert, "", state=RESOLVED, final_outcome=d.value, final_detail=d.detail.strip(), resolution=decision
        )
    _correctable(alert, d, current)
    return _changed(alert, current, final_outcome=d.value, final_detail=d.detail.strip(), resolution=decision)


def _first(alert: Alert, d: DecisionInput) -> None:
    if d.correction_reason.strip():
        raise DecisionRefused(
            "invalid",
            f"alert {alert.alert_id} has no {d.step} yet: there is nothing to correct; decide it without a "
            "correction_reason",
        )


def _correctable(alert: Alert, d: DecisionInput, current: str) -> None:
    recorded = {ADJUDICATION: alert.adjudication, ENGAGEMENT: alert.engagement, OUTCOME: alert.resolution}[d.step]
    by = f" by {recorded.officer}" if recorded else ""
    if not d.may_correct:
        raise DecisionRefused(
            "permission" if d.correction_reason.strip() else "conflict",
            f"alert {alert.alert_id} already has {d.step} '{current}'{by}; only a supervisor may correct it, "
            "with a correction reason",
        )
    if not d.correction_reason.strip():
        raise DecisionRefused(
            "invalid",
            f"alert {alert.alert_id} already has {d.step} '{current}'{by}: give correction_reason to correct it "
            "(it is audited)",
        )
    if not d.revision:
        raise DecisionRefused(
            "invalid",
            f"alert {alert.alert_id} already has {d.step} '{current}'{by}: a correction names the revision it "
            f"corrects (revision {alert.revision} now), so that two corrections at once cannot both change it",
        )


def _adjudication_text(alert: Alert) -> str:
    """The adjudication as recorded: its outcome, and the perceived groups if any."""
    perceived = ", ".join(f"perceived {d} {g}" for d, g in alert.perceived.items())
    return f"{alert.outcome}, {perceived}" if perceived else alert.outcome


def _changed(alert: Alert, previous: str, **fields) -> Change:
    at = next(v.at for v in fields.values() if isinstance(v, Decision))
    updated = dataclasses.replace(alert, revision=alert.revision + 1, updated_at=at, **fields)
    return Change(alert=updated, previous=previous, before=alert)


def count_changes(step: str, previous: str, value: str) -> dict[str, int]:
    """How a decision changes the deployment's counts (the report's stats): a correction moves one
    (none when only the perceived groups were corrected: the outcome is the same)."""
    name = {ADJUDICATION: "adjudicated_{}", ENGAGEMENT: "{}", OUTCOME: "outcome_{}"}[step]
    counts = {name.format(value): 1}
    if previous:
        counts[name.format(previous)] = counts.get(name.format(previous), 0) - 1
    return {k: n for k, n in counts.items() if n}


def perceived_deltas(change: Change) -> dict[tuple[str, str, str], int]:
    """How an adjudication moves the counts per perceived group: (outcome, dimension, group) -> +1 or
    -1, for true and false alerts. A correction takes out what the alert counted before (its old
    outcome or group) and counts what it is now, so a count moves and never doubles."""
    deltas: dict[tuple[str, str, str], int] = {}
    for alert, sign in ((change.before, -1), (change.alert, 1)):
        if alert is None or alert.outcome not in COUNTED_OUTCOMES:
            continue
        for dimension, group in alert.perceived.items():
            key = (alert.outcome, dimension, group)
            deltas[key] = deltas.get(key, 0) + sign
    return {k: n for k, n in deltas.items() if n}
