import time
from pathlib import Path

import pytest
import yaml

from lfr_deployments.lifecycle import InvalidRequest, ThresholdPolicy, same_name, validate_new
from lfr_deployments.policy import DeploymentPolicy, PolicyError
from lfr_testing.deployments import shipped_policy

POLICY = ThresholdPolicy("sface-2021dec", default=0.6, floor=0.55)
# The policy file as shipped: the tests check against what a new installation runs with.
RULES = DeploymentPolicy.load(Path(__file__).resolve().parents[4] / "deploy" / "policy.yaml")


def _new(**overrides):
    now = time.time()
    fields = dict(
        name="Op Test",
        purpose="wanted persons",
        authorising_officer="Supt A",
        location="High St",
        planned_start=now,
        planned_end=now + 3600,
        cameras=[("van-1", "cam-1")],
        threshold=None,
        threshold_override_reason="",
        watchlist_size_limit=0,
        policy=POLICY,
        default_size_limit=10_000,
        max_size_limit=200_000,
        rules=RULES,
        where="crime_hotspot",
    )
    fields.update(overrides)
    return validate_new(**fields)


def test_no_threshold_means_the_calibrated_default():
    new = _new()
    assert (new.threshold, new.threshold_overridden, new.watchlist_size_limit) == (0.6, False, 10_000)


def test_a_threshold_below_the_floor_needs_a_reason_and_is_marked_overridden():
    with pytest.raises(InvalidRequest, match="below the floor"):
        _new(threshold=0.5)
    new = _new(threshold=0.5, threshold_override_reason="missing child, ACC authorised")
    assert new.threshold_overridden and new.threshold_override_reason.startswith("missing child")


def test_a_threshold_at_or_above_the_floor_needs_none():
    assert not _new(threshold=0.55).threshold_overridden


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"name": " "}, "name is required"),
        ({"purpose": ""}, "purpose is required"),
        ({"planned_end": None}, "planned_end is required"),
        ({"planned_end": 1.0}, "after planned_start"),
        ({"planned_start": time.time() + 7200, "planned_end": time.time() + 3600}, "the window is reversed"),
        ({"planned_start": time.time() - 7200, "planned_end": time.time() + 3600}, "planned_start is in the past"),
        ({"location": " "}, "location is required: where the cameras will be"),
        ({"where": "anywhere"}, "where 'anywhere' is not one of the policy's: crime_hotspot, protective_security"),
        ({"where": ""}, "is not one of the policy's"),
        ({"threshold": 1.2}, "between 0 and 1"),
        ({"cameras": [("van 1", "cam")]}, "van and camera ids"),
        ({"watchlist_size_limit": 300_000}, "above the maximum"),
        ({"name": "x" * 1_000_000}, "name is 1000000 characters long; at most 200"),
        ({"purpose": "wanted\npersons"}, "purpose holds control characters"),
        ({"location": "\x00"}, "location holds control characters"),
        ({"threshold_override_reason": "r" * 1001, "threshold": 0.5}, "threshold_override_reason is 1001"),
        ({"planned_end": time.time() + 100_000 * 3600}, "at most 24 hours \\(the policy file's max_duration_h\\)"),
        ({"planned_start": time.time() + 100 * 86400, "planned_end": time.time() + 100 * 86400 + 60}, "90 days"),
        ({"cameras": [("van-1", f"cam-{i}") for i in range(300)]}, "at most 256"),
    ],
)
def test_invalid_requests_say_what_to_change(overrides, message):
    with pytest.raises(InvalidRequest, match=message):
        _new(**overrides)


def test_the_longest_deployment_is_the_policys():
    now = time.time()
    longer = RULES.model_copy(update={"max_duration_h": 72.0})
    assert _new(planned_start=now, planned_end=now + 48 * 3600, rules=longer).planned_end == now + 48 * 3600


def test_an_urgent_deployment_is_to_be_ratified_within_the_policys_hours():
    now = time.time()
    urgent = _new(urgent=True, now=now)
    assert urgent.urgent and urgent.ratify_by == now + RULES.ratify_within_h * 3600
    assert _new().ratify_by == 0.0


@pytest.mark.parametrize(
    "text, message",
    [
        ("version: 1\nwhere: [a]\nmax_duration_h: 24\nmanifest_retention_days: 1\n", "ratify_within_h: Field required"),
        ("version: 1\nwhere: [a]\nmax_duration_h: 24\nratify_within_h: 24\nwhen: always\n", "when: Extra inputs"),
        (
            "version: 1\nwhere: [Car Park]\nmax_duration_h: 24\nratify_within_h: 24\nmanifest_retention_days: 1\n",
            "where: Value error, codes",
        ),
        ("version: 1\nwhere: []\nmax_duration_h: 24\nratify_within_h: 24\nmanifest_retention_days: 1\n", "where: "),
        (
            "version: 1\nwhere: [a]\nmax_duration_h: 0\nratify_within_h: 24\nmanifest_retention_days: 1\n",
            "max_duration_h: Input should be greater",
        ),
        (
            "version: 2\nwhere: [a]\nmax_duration_h: 1\nratify_within_h: 24\nmanifest_retention_days: 1\n",
            "version: Input should be 1",
        ),
        ("- a list\n", "must be a mapping"),
        ("where: [a\n", "is not YAML"),
    ],
)
def test_a_bad_policy_file_is_refused_with_the_field_named(tmp_path, text, message):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=message):
        DeploymentPolicy.load(path)
    with pytest.raises(PolicyError, match="cannot be read"):
        DeploymentPolicy.load(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "line, field",
    [
        ("max_false_alerts_per_faces: true", "max_false_alerts_per_faces"),
        ("max_false_alerts_per_faces: on", "max_false_alerts_per_faces"),
        ("max_false_alerts_per_faces: yes", "max_false_alerts_per_faces"),
        ("max_false_alerts_per_deployment: on", "max_false_alerts_per_deployment"),
        ("max_duration_h: yes", "max_duration_h"),
        ("min_margin: false", "min_margin"),
        ("version: true", "version"),
    ],
)
def test_a_boolean_for_a_number_is_refused_with_the_field_named_not_read_as_1(tmp_path, line, field):
    # YAML reads true/on/yes as True, which pydantic would take as 1: a cap of 1 false alert in 1 face.
    path = tmp_path / "policy.yaml"
    text = (Path(__file__).resolve().parents[4] / "deploy" / "policy.yaml").read_text()
    key = line.split(":")[0]
    lines = [line if raw.startswith(f"{key}:") else raw for raw in text.splitlines()]
    assert line in lines
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PolicyError, match=f"{field}: Value error, a number is required, not the boolean"):
        DeploymentPolicy.load(path)


def test_a_boolean_share_is_refused_too(tmp_path):
    with pytest.raises(PolicyError, match="equity.reference_shares.sex.female: Value error, a number is required"):
        DeploymentPolicy.load(_equity_policy(tmp_path, reference_shares={"sex": {"female": True, "male": 0.5}}))


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            {"compile_before_start_h": 400},
            r"compile_before_start_h \(400 h, policy.yaml\) plus its max_duration_h \(24 h\) is 424 h, not shorter "
            r"than the watchlist log's retention, LFR_WATCHLIST_RETENTION_S=691200 s \(192 h\)",
        ),
        (
            {"compile_before_start_h": 168},
            r"compile_before_start_h \(168 h, policy.yaml\) plus its max_duration_h \(24 h\) is 192 h",
        ),
        ({"max_duration_h": 200}, r"max_duration_h \(200 h, policy.yaml\) is not shorter than the watchlist log"),
    ],
)
def test_a_policy_the_watchlist_log_cannot_keep_is_refused_naming_both_numbers(tmp_path, fields, message):
    data = shipped_policy()
    data.update(fields)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    rules = DeploymentPolicy.load(path)
    retention_s = 8 * 24 * 3600  # LFR_WATCHLIST_RETENTION_S as shipped (192 h)
    with pytest.raises(PolicyError, match=message):
        rules.check_watchlist_log(retention_s, path.name)
    RULES.check_watchlist_log(retention_s, "shipped")  # 24 h + 24 h: kept


def _equity_policy(tmp_path, **equity) -> Path:
    data = shipped_policy()
    data["equity"].update(equity)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "equity, message",
    [
        ({"reference_shares": {"ethnicity": {"IC1": 0.5, "IC3": 0.4}}}, "ethnicity: the shares sum to 0.9000, not 1"),
        ({"reference_shares": {"ethnicity": {"IC1": 0.9, "IC7": 0.1}}}, r"\['IC7'\] not in perceived_groups.ethnicity"),
        ({"reference_shares": {"age": {"adult": 1.0}}}, "reference_shares.age: not a perceived dimension"),
        ({"reference_shares": {"sex": {"female": 1.2, "male": -0.2}}}, "shares are above 0 and at most 1"),
        ({"p_value": 0}, "equity.p_value: Input should be greater than 0"),
        ({"min_false_alerts": 0}, "equity.min_false_alerts: Input should be greater than or equal to 1"),
        ({"window": 90}, "equity.window: Extra inputs"),
    ],
)
def test_the_equity_block_is_checked_against_the_perceived_lists(tmp_path, equity, message):
    with pytest.raises(PolicyError, match=message):
        DeploymentPolicy.load(_equity_policy(tmp_path, **equity))


def test_the_shipped_policy_lists_the_ic_codes_and_their_example_shares_sum_to_one():
    assert RULES.perceived_groups.ethnicity == ("IC1", "IC2", "IC3", "IC4", "IC5", "IC6", "IC9")
    assert RULES.perceived_groups.sex == ("female", "male")
    shares = RULES.equity.reference_shares
    assert "IC9" not in shares["ethnicity"]  # not known: counted, never tested
    assert sum(shares["ethnicity"].values()) == pytest.approx(1) and sum(shares["sex"].values()) == pytest.approx(1)
    assert (RULES.equity.p_value, RULES.equity.min_false_alerts, RULES.equity.window_days) == (0.001, 10, 90)


def test_a_new_deployment_carries_the_policys_perceived_lists_and_equity_block():
    new = _new()
    assert new.perceived_groups == {"sex": ("female", "male"), "ethnicity": RULES.perceived_groups.ethnicity}
    assert new.equity == RULES.equity.as_policy() and new.equity.reference_shares["ethnicity"]["IC3"] == 0.042


@pytest.mark.parametrize(
    "a, b, same",
    [
        ("Supt A Example", "Supt. A. Example", True),
        ("supt. a.  example ", "SUPT A EXAMPLE", True),
        ("Supt A Example", "Supt A Examples", False),
        ("Ch Insp. B", "Supt A Example", False),
        ("", "", False),  # no name is nobody's
    ],
)
def test_officer_names_are_compared_ignoring_case_spacing_and_punctuation(a, b, same):
    assert same_name(a, b) is same
