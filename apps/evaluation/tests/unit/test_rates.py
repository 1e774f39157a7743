"""Rate arithmetic on small constructed score sets whose answers are known by hand."""

import math
from pathlib import Path

import numpy as np
import pytest

from lfr_eval.experiment import Search
from lfr_eval.rates import difference_test, fpir_at_size, rates_over_thresholds, rescale_fpir, wilson
from lfr_eval.results import Attribute, compute, recommend
from lfr_watchlist import Hit


def test_wilson_intervals_match_published_values():
    # 0/10 -> [0, 0.2775]; 5/10 -> [0.2366, 0.7634] (Wilson 1927; Newcombe 1998, table I)
    assert wilson(0, 10).high == pytest.approx(0.2775, abs=1e-4)
    five = wilson(5, 10)
    assert (five.low, five.high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson(0, 0).as_dict() == {"rate": None, "k": 0, "n": 0, "ci95": [0.0, 1.0]}


def test_zero_false_positives_in_5000_probes_bounds_fpir_near_1_in_1300():
    assert 1 / wilson(0, 5000).high == pytest.approx(1302, abs=2)


def test_fpir_of_a_larger_watchlist_from_fmr_and_from_fpir():
    assert fpir_at_size(1e-4, 10_000) == pytest.approx(1 - math.exp(10_000 * math.log1p(-1e-4)))
    assert fpir_at_size(1e-4, 10_000) == pytest.approx(0.6321, abs=1e-4)
    assert fpir_at_size(0.0, 10_000) == 0.0
    assert rescale_fpir(0.1, 100, 200) == pytest.approx(0.19)  # 1 - 0.9^2


def test_group_difference_tests():
    assert difference_test([(0, 100), (0, 100)]) == 1.0  # nothing observed: nothing to show
    assert difference_test([(10, 100), (0, 100)]) < 0.01
    assert difference_test([(1, 100), (2, 100)]) > 0.5
    assert difference_test([(5, 50), (0, 0)]) == 1.0  # an empty group is left out
    assert 0 < difference_test([(30, 100), (10, 100), (12, 100)]) < 0.01  # chi-square, three groups


def test_counts_at_or_above_each_threshold_ignore_missing_scores():
    scores = np.array([0.2, 0.5, 0.5, np.nan, 0.9])
    assert rates_over_thresholds(scores, [0.5, 0.6, 0.95]) == [(3, 5), (1, 5), (0, 5)]


def _search(key, mate, hits, group, source="set", acquired=True):
    return Search(
        key=key,
        path=Path(key),
        source=source,
        mate=mate,
        labels={"sex": group},
        status="ok" if acquired else "no_face",
        vector=np.zeros(2) if acquired else None,
        hits=[Hit(s, s, "c", score) for s, score in hits],
    )


def _experiment():
    mated = [
        _search("m1", "a", [("a", 0.70), ("b", 0.30)], "F"),  # identified up to 0.70
        _search("m2", "a", [("b", 0.65), ("a", 0.60)], "M"),  # best is the wrong person: never identified
        _search("m3", "b", [], "M", acquired=False),  # no usable face: a miss
    ]
    nonmated = [
        _search("n1", None, [("a", 0.55)], "F"),
        _search("n2", None, [("b", 0.45)], "M"),
        _search("n3", None, [], "M", acquired=False),  # cannot alert: not in FPIR's denominator
    ]
    impostors = np.sort(np.array([0.55, 0.45, 0.65, 0.30, 0.10, 0.20], dtype=np.float32))
    view = compute(
        mated=mated,
        nonmated=nonmated,
        impostors=impostors,
        thresholds=[0.4, 0.5, 0.6, 0.7, 0.8],
        watchlist_size=2,
        target_size=1000,
        mated_attributes=[Attribute("set", "sex")],
        nonmated_attributes=[Attribute("set", "sex")],
        min_group_n=2,
    )
    return view


def test_tpir_fnir_fpir_and_fmr_by_hand():
    rows = {r["threshold"]: r for r in _experiment()["thresholds"]}
    assert [rows[t]["tpir"]["k"] for t in (0.4, 0.5, 0.6, 0.7, 0.8)] == [1, 1, 1, 1, 0]
    assert rows[0.5]["tpir"]["n"] == 3 and rows[0.5]["fnir"]["k"] == 2
    assert [(rows[t]["fpir"]["k"], rows[t]["fpir"]["n"]) for t in (0.4, 0.5, 0.6)] == [(2, 2), (1, 2), (0, 2)]
    assert [rows[t]["fmr"]["k"] for t in (0.4, 0.5, 0.6, 0.7)] == [3, 2, 1, 0]
    assert rows[0.5]["fmr"]["n"] == 6
    assert rows[0.5]["groups"]["fpir"]["set.sex"]["F"]["k"] == 1
    assert rows[0.5]["groups"]["fpir"]["set.sex"]["M"]["n"] == 1
    assert "warning" in rows[0.5]["groups"]["fpir"]["set.sex"]["M"]  # n below min_group_n


def test_rank_one_and_failures():
    view = _experiment()
    assert (view["rank1"]["k"], view["rank1"]["n"]) == (1, 3)
    assert view["probe_failures"]["mated"]["overall"] == {"no_face": 1}
    assert view["nonmated_acquired"] == 2 and view["impostor_pairs"] == 6


def test_recommendation_is_the_lowest_threshold_meeting_the_target_with_equitable_fpir():
    view = _experiment()
    # FMR reaches 0 at 0.7, so the extrapolated FPIR meets any target there first.
    rec = recommend(view, target_fpir=1 / 6000, target_size=1000, alpha=0.05)
    assert rec["threshold"] == 0.7
    assert rec["tpir"]["k"] == 1 and rec["resolved_by_data"] is False
    assert recommend(view, target_fpir=0.0, target_size=1000, alpha=0.05)["threshold"] == 0.7
    loose = recommend(view, target_fpir=1.0, target_size=1000, alpha=0.05)
    assert loose["threshold"] == 0.4
