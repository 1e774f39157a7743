"""The operating point: the lowest threshold at or above both floors whose conservative predicted false
alerts meet the budget, from a calibration's curves (synthetic here, so that each rule shows)."""

import math

import pytest

from lfr_faces.calibration import Calibration, CalibrationIncomplete
from lfr_testing.calibration import GRID, fmr_curve, synthetic


def calibration(**changes) -> Calibration:
    return synthetic(model_id="m", **changes)


def test_a_smaller_list_gets_a_lower_threshold_at_the_same_budget():
    calib = calibration()
    small, large = calib.operating_point(100, 1 / 1000), calib.operating_point(10_000, 1 / 1000)
    assert small.threshold is not None and large.threshold is not None
    assert small.threshold < large.threshold
    for point in (small, large):
        assert point.predicted_fpir_upper <= 1 / 1000
        below = round(point.threshold - 0.01, 2)
        if below >= 0.60:  # one step lower would break the budget: it is the lowest that meets it
            assert calib.predicted_fpir_upper(below, point.entries)[0] > 1 / 1000


def test_the_worst_usable_group_bounds_the_prediction_and_a_tiny_group_does_not():
    calib = calibration()
    group, fmr = calib.worst(0.70)
    assert group == "children"  # 8x the overall rate; "tiny" (20 faces) is reported, never used
    assert fmr == pytest.approx(calib.curves["children"].fmr_upper(0.70))
    fpir, _ = calib.predicted_fpir_upper(0.70, 1000)
    assert fpir == pytest.approx(min(1.0, fmr * 1000 * 4.0))  # the ratio's upper bound, not 2.0


def test_the_data_speak_where_counts_are_ten_or_more_and_the_fit_beyond():
    curve = calibration().overall
    assert curve.speaks(0.50) == "data" and curve.speaks(0.78) == "fit"
    fmr_078 = 1e-4 * 10 ** (-(0.78 - 0.50) / 0.03)
    assert curve.fmr_upper(0.78) == pytest.approx(fmr_078 * 2)  # the band's high side
    uppers = [curve.fmr_upper(t) for t in GRID]
    assert all(a >= b for a, b in zip(uppers, uppers[1:], strict=False))  # never rises with the threshold


def test_the_floors_set_the_threshold_when_the_budget_would_allow_lower():
    point = calibration().operating_point(1, 1 / 10)
    assert point.threshold == 0.60 and point.bound_by == "equitability_floor"
    point = calibration(equitability_floor=0.50).operating_point(1, 1 / 10)
    assert point.threshold == 0.55 and point.bound_by == "model_min"


def test_a_list_too_large_for_the_budget_gets_no_threshold_and_the_largest_that_fits():
    calib = calibration()
    point = calib.operating_point(100_000_000, 1 / 6000)
    assert point.threshold is None and point.recall is None
    fits = calib.operating_point(point.largest_list, 1 / 6000)
    assert fits.threshold is not None and fits.threshold <= 0.78
    assert calib.operating_point(point.largest_list + max(1, point.largest_list // 10), 1 / 6000).threshold in (
        None,
        0.78,
    )


def test_recall_is_read_at_the_threshold_with_its_interval():
    point = calibration().operating_point(100, 1 / 1000)
    assert point.recall is not None and point.recall.n == 17
    assert point.recall.low <= point.recall.k / point.recall.n <= point.recall.high


@pytest.mark.parametrize("budget", [0, 1, 2, -1e-3, math.nan])
def test_a_budget_that_is_not_a_rate_is_refused(budget):
    with pytest.raises(ValueError, match="budget"):
        calibration().operating_point(100, budget)


@pytest.mark.parametrize(
    ("drop", "says"),
    [("per_pass", "lfr eval --video"), ("fmr", "lfr eval --all-pairs"), ("equitability_floor", "lfr eval")],
)
def test_a_calibration_without_a_curve_names_the_command_that_writes_it(drop, says):
    data = {
        "model_id": "m",
        "model_min": 0.55,
        "model_max": 0.78,
        "equitability_floor": 0.6,
        "fmr": {"curves": {"all": fmr_curve(5000, 1.0), "g": fmr_curve(500, 2.0)}},
        "per_pass": {"ratio": 2.0, "ratio_upper": 4.0},
        "recall": {"single_shot": [], "per_pass": []},
    }
    del data[drop]
    with pytest.raises(CalibrationIncomplete, match=says):
        Calibration.from_dict(data)


def test_a_calibration_without_group_curves_is_incomplete():
    with pytest.raises(CalibrationIncomplete, match="all-pairs"):
        calibration(fmr={"curves": {"all": fmr_curve(5000, 1.0)}})
