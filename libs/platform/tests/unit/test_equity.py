"""The equity monitor's arithmetic: the stats names, the exact binomial test and who it is run for."""

import pytest
from scipy.stats import binom

from lfr_platform.equity import (
    EquityPolicy,
    binomial_p_value,
    disparity,
    false_alerts_tested,
    parse_stat_name,
    perceived_counts,
    stat_name,
)

POLICY = EquityPolicy(
    reference_shares={"sex": {"female": 0.51, "male": 0.49}, "ethnicity": {"IC1": 0.9, "IC3": 0.1}},
    p_value=0.001,
    min_false_alerts=10,
    window_days=90,
)


def test_the_p_value_is_the_exact_upper_tail_of_the_binomial():
    assert binomial_p_value(4, 10, 0.042) == pytest.approx(binom.sf(3, 10, 0.042))  # P(X >= 4)
    assert binomial_p_value(4, 10, 0.042) == pytest.approx(0.000533, rel=1e-3)
    assert binomial_p_value(0, 10, 0.5) == 1.0 and binomial_p_value(3, 0, 0.5) == 1.0
    assert binomial_p_value(10, 10, 0.5) == pytest.approx(0.5**10)


def test_each_group_with_a_share_is_tested_and_a_group_without_one_is_left_out_of_n():
    counts = {"ethnicity": {"IC3": 8, "IC1": 4, "IC9": 5}, "sex": {"male": 6}}
    assert false_alerts_tested(counts, POLICY) == {"sex": 6, "ethnicity": 12}
    results = {(t.dimension, t.group): t for t in disparity(counts, POLICY)}
    assert set(results) == {("sex", "female"), ("sex", "male"), ("ethnicity", "IC1"), ("ethnicity", "IC3")}
    ic3 = results["ethnicity", "IC3"]
    assert (ic3.false_alerts, ic3.tested, ic3.share) == (8, 12, 8 / 12)
    assert ic3.p_value == pytest.approx(binom.sf(7, 12, 0.1)) and ic3.flagged(POLICY)
    assert not results["ethnicity", "IC1"].flagged(POLICY)
    male = results["sex", "male"]  # 6 of 6, p = 0.49**6 = 0.014, and too few anyway
    assert male.p_value == pytest.approx(0.49**6) and not male.flagged(POLICY)
    assert results["sex", "female"].p_value == 1.0


def test_too_few_false_alerts_conclude_nothing_however_small_p():
    (ic3,) = [t for t in disparity({"ethnicity": {"IC3": 5}}, POLICY) if t.group == "IC3"]
    assert ic3.p_value == pytest.approx(0.1**5) and ic3.p_value < POLICY.p_value and not ic3.flagged(POLICY)


def test_stats_names_and_the_policy_block_round_trip():
    assert stat_name("false", "ethnicity", "IC3") == "perceived_false:ethnicity:IC3"
    assert parse_stat_name("perceived_false:ethnicity:IC3") == ("false", "ethnicity", "IC3")
    assert parse_stat_name("adjudicated_false") is None
    stats = {"perceived_false:sex:male": 2, "perceived_true:sex:male": 1, "perceived_false:sex:female": -1}
    assert perceived_counts(stats, "false") == {"sex": {"male": 2, "female": 0}}
    assert EquityPolicy.from_json(POLICY.to_json()) == POLICY
