import time
from pathlib import Path

import pytest
import yaml

from lfr_deployments.lifecycle import (
    CHOSEN,
    DERIVED,
    OVERRIDDEN,
    InvalidRequest,
    ListTooLarge,
    ThresholdPolicy,
    same_name,
    validate_new,
)
from lfr_deployments.policy import DeploymentPolicy, PolicyError
from lfr_testing.calibration import synthetic
from lfr_testing.deployments import shipped_policy
from lfr_watchlist.templates import most_entries

POLICY = ThresholdPolicy(synthetic(), budget=1 / 1000)
DERIVED_AT_LIMIT = POLICY.point(most_entries(10_000)).threshold
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


def test_no_threshold_means_the_one_derived_for_the_size_limit():
    new = _new()
    assert DERIVED_AT_LIMIT is not None and POLICY.calibration.equitability_floor < DERIVED_AT_LIMIT < 0.78
    assert (new.threshold.value, new.threshold.source, new.watchlist_size_limit) == (DERIVED_AT_LIMIT, DERIVED, 10_000)
    assert new.threshold.point.entries == most_entries(10_000) and new.threshold.floor == DERIVED_AT_LIMIT
    assert [row.entries for row in new.threshold.tradeoff] == [most_entries(10_000) * m for m in (1, 3, 10)]


def test_a_smaller_list_gets_a_lower_threshold_at_the_same_budget():
    small = _new(watchlist_size_limit=100).threshold
    assert small.value < DERIVED_AT_LIMIT and small.source == DERIVED
    assert small.point.predicted_fpir_upper <= POLICY.budget


def test_a_threshold_below_the_derived_one_needs_a_reason_and_is_marked_overridden():
    below = round(DERIVED_AT_LIMIT - 0.02, 2)
    with pytest.raises(InvalidRequest, match=f"below {DERIVED_AT_LIMIT:.3f}, the threshold derived for 15,000"):
        _new(threshold=below)
    new = _new(threshold=below, threshold_override_reason="missing child, ACC authorised")
    assert new.threshold.source == OVERRIDDEN and new.threshold_override_reason.startswith("missing child")
    assert new.threshold.value == below and new.threshold.floor == DERIVED_AT_LIMIT


def test_a_threshold_at_or_above_the_derived_one_needs_none():
    assert _new(threshold=DERIVED_AT_LIMIT).threshold.source == DERIVED
    higher = _new(threshold=0.77).threshold
    assert (higher.value, higher.source) == (0.77, CHOSEN)


def test_no_override_goes_below_the_model_minimum():
    with pytest.raises(InvalidRequest, match="below the model minimum 0.550"):
        _new(threshold=0.54, threshold_override_reason="any reason at all")


def test_the_review_derives_the_threshold_again_for_the_entries_reviewed():
    created = _new().threshold
    reviewed = POLICY.at_review(created.value, created.source, 40)
    assert reviewed.source == DERIVED and reviewed.value < created.value
    assert reviewed.value == POLICY.point(40).threshold
    # a force's higher choice is kept; an audited override is kept while it is still below the derived one
    assert POLICY.at_review(0.77, CHOSEN, 40).value == 0.77
    assert POLICY.at_review(0.56, OVERRIDDEN, 40_000).source == OVERRIDDEN
    # a choice the grown list overtook, or an override the shrunk list no longer needs
    assert POLICY.at_review(0.61, CHOSEN, 40_000).value == POLICY.point(40_000).threshold
    assert POLICY.at_review(0.77, OVERRIDDEN, 40).source == CHOSEN


def test_a_reviewed_list_too_large_for_the_budget_is_refused_with_the_figures():
    strict = ThresholdPolicy(synthetic(), budget=1e-9)
    point = strict.point(10_000)
    with pytest.raises(ListTooLarge, match=f"largest list that fits is {point.largest_list:,} entries") as refused:
        strict.at_review(DERIVED_AT_LIMIT, DERIVED, 10_000)
    assert "10,000 watchlist entries are too many" in str(refused.value)
    assert "1 in 1,000,000,000 faces scanned" in str(refused.value) and "children" in str(refused.value)
    assert strict.point(point.largest_list).threshold is not None


def test_creating_a_list_too_large_is_allowed_at_the_models_maximum_and_the_review_decides():
    new = _new(policy=ThresholdPolicy(synthetic(), budget=1e-9))
    assert new.threshold.point.threshold is None and new.threshold.value == 0.78


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
        ({"threshold_override_reason": "r" * 1001, "threshold": 0.56}, "threshold_override_reason is 1001"),
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
        ("version: 2\nwhere: [a]\nmax_duration_h: 24\nmanifest_retention_days: 1\n", "ratify_within_h: Field required"),
        ("version: 2\nwhere: [a]\nmax_duration_h: 24\nratify_within_h: 24\nwhen: always\n", "when: Extra inputs"),
        (
            "version: 2\nwhere: [Car Park]\nmax_duration_h: 24\nratify_within_h: 24\nmanifest_retention_days: 1\n",
            "where: Value error, codes",
        ),
        ("version: 2\nwhere: []\nmax_duration_h: 24\nratify_within_h: 24\nmanifest_retention_days: 1\n", "where: "),
        (
            "version: 2\nwhere: [a]\nmax_duration_h: 0\nratify_within_h: 24\nmanifest_retention_days: 1\n",
            "max_duration_h: Input should be greater",
        ),
        (
            "version: 3\nwhere: [a]\nmax_duration_h: 1\nratify_within_h: 24\nmanifest_retention_days: 1\n",
            "version: Input should be 2",
        ),
        ("version: 1\nmax_false_alerts_per_faces: 1000\n", "is version 1: in version 2, max_false_alerts_per_faces"),
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
        ("false_alert_budget: true", "false_alert_budget"),
        ("false_alert_budget: on", "false_alert_budget"),
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


@pytest.mark.parametrize(
    "value, says",
    [
        ("0", "above 0 and under 1"),
        ("1", "above 0 and under 1"),
        ("2 in 1", "above 0 and under 1"),
        ("1 in 1", "above 0 and under 1"),
        ("1 in 0", "the number of faces must be above 0"),
        ("0 in 6000", "above 0 and under 1"),
        ("one in a thousand", "is not a rate: write '1 in N'"),
        ("1/6000", "is not a rate"),
        ("null", "a rate is required"),
    ],
)
def test_a_budget_that_is_not_a_rate_is_refused_at_start_naming_the_field(tmp_path, value, says):
    path = tmp_path / "policy.yaml"
    text = (Path(__file__).resolve().parents[4] / "deploy" / "policy.yaml").read_text()
    lines = [
        f"false_alert_budget: {value}" if raw.startswith("false_alert_budget:") else raw for raw in text.splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PolicyError, match=f"false_alert_budget: .*{says}"):
        DeploymentPolicy.load(path)


@pytest.mark.parametrize(("value", "rate"), [("1 in 6000", 1 / 6000), ("1 in 1,000", 1 / 1000), ("0.0005", 0.0005)])
def test_a_budget_reads_as_people_write_it(tmp_path, value, rate):
    path = tmp_path / "policy.yaml"
    text = (Path(__file__).resolve().parents[4] / "deploy" / "policy.yaml").read_text()
    lines = [
        f"false_alert_budget: {value}" if raw.startswith("false_alert_budget:") else raw for raw in text.splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")
    assert DeploymentPolicy.load(path).false_alert_budget == pytest.approx(rate)
