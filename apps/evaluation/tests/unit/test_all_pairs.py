"""Every-pair counting, the GPD tail and the calibration file, on constructed data whose answers are
known: hand-counted pairs, samples drawn from a known GPD, a file with other commands' sections."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from lfr_eval import calibration_file, pairs, tail
from lfr_eval.allpairs import Face, excluded_pairs, groups_of
from lfr_eval.rates import wilson
from lfr_eval.results import model_range
from lfr_eval.review import load_exclusions
from lfr_eval.video import MIN_PAIRS, per_pass_ratio


def _unit(angles_deg):
    """Unit vectors in a plane: the cosine of two of them is the cosine of their angle apart."""
    a = np.radians(np.asarray(angles_deg, dtype=np.float64))
    return np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], axis=1).astype(np.float32)


# Five faces on a circle; identities: 0 and 1 are one person, 2, 3, 4 three others.
ANGLES = [0, 10, 40, 60, 100]
IDENTITY = np.array([0, 0, 1, 2, 3])
GROUP_F = np.array([True, True, False, False, True])  # faces 0, 1, 4


def _cos(i, j):
    return math.cos(math.radians(ANGLES[i] - ANGLES[j]))


def _by_hand(thresholds, probes, skip=()):
    """Ordered pairs (a in probes, b) of different identity, not skipped, at or above each threshold."""
    valid = [
        (a, b)
        for a in probes
        for b in range(5)
        if IDENTITY[a] != IDENTITY[b] and (a, b) not in skip and (b, a) not in skip
    ]
    return len(valid), [sum(_cos(a, b) >= t - 1e-6 for a, b in valid) for t in thresholds]


def test_every_ordered_pair_of_different_people_is_counted_per_group_of_its_probe():
    thresholds = np.array([0.1, 0.5, 0.75, 0.9, 0.95])
    counts = pairs.count(_unit(ANGLES), IDENTITY, {"F": GROUP_F}, thresholds, keep_from=0.5, block=2)
    n_all, k_all = _by_hand(thresholds, range(5))
    n_f, k_f = _by_hand(thresholds, [0, 1, 4])
    assert (counts.curves["all"].n, counts.curves["all"].k.tolist()) == (n_all, k_all)
    assert (counts.curves["F"].n, counts.curves["F"].k.tolist()) == (n_f, k_f)
    assert n_all == 5 * 4 - 2 and n_f == 3 * 4 - 2  # faces 0 and 1 are never paired
    assert counts.curves["F"].faces == 3
    # At 0.75 (40 degrees apart or less): 0-2, 1-2, 2-3, 3-4, both orders; at 0.9, 2-3 (20 degrees).
    assert k_all == [14, 14, 8, 2, 0]
    # The pairs kept for the tail: every ordered pair at or above keep_from, with its score.
    kept = sorted(zip(counts.high_a.tolist(), counts.high_b.tolist(), strict=True))
    assert kept == sorted(
        (a, b) for a in range(5) for b in range(5) if IDENTITY[a] != IDENTITY[b] and _cos(a, b) >= 0.5
    )


def test_a_reviewed_same_person_pair_is_skipped_in_both_orders():
    thresholds = np.array([0.1, 0.75, 0.9])
    counts = pairs.count(_unit(ANGLES), IDENTITY, {}, thresholds, excluded=[(2, 3)], keep_from=0.5)
    n, k = _by_hand(thresholds, range(5), skip={(2, 3)})
    assert (counts.curves["all"].n, counts.curves["all"].k.tolist()) == (n, k) == (16, [12, 6, 0])
    assert (2, 3) not in set(zip(counts.high_a.tolist(), counts.high_b.tolist(), strict=True))


def test_exclusions_name_a_probe_photo_and_every_photo_of_the_subject(tmp_path):
    faces = [
        Face("lfw:A/A_1.jpg", "lfw", "A", "A", {"sex": "F"}),
        Face("lfw:B/B_1.jpg", "lfw", "B", "B", {"sex": "M"}),
        Face("lfw:B/B_2.jpg", "lfw", "B", "B", {"sex": "M"}),
        Face("utkface:x.jpg", "utkface", "utkface:x.jpg", "utkface:x.jpg", {"race_utk": "Asian"}),
    ]
    rulings = tmp_path / "review.csv"
    rulings.write_text(
        "probe,subject_id,score,same_person,note\n"
        "utkface:x.jpg,B,0.8,yes,same photo\n"
        "lfw:A/A_1.jpg,B,0.7,unsure,stays an impostor\n"
        "lfw:A/A_1.jpg,utkface:x.jpg,0.7,no,different\n"
        "utkface:gone.jpg,B,0.7,yes,not in these data\n"
    )
    pairs_, applied = excluded_pairs(faces, load_exclusions([rulings]))
    assert sorted(pairs_) == [(3, 1), (3, 2)] and applied == 1
    assert {k: v.tolist() for k, v in groups_of(faces).items()} == {
        "lfw sex=F": [True, False, False, False],
        "lfw sex=M": [False, True, True, False],
        "utkface race_utk=Asian": [False, False, False, True],
    }


def test_the_grid_holds_every_threshold_from_030_to_090_in_steps_of_0005():
    g = pairs.grid()
    assert len(g) == 121 and g[0] == 0.3 and g[-1] == 0.9 and 0.62 in g.tolist() and 0.685 in g.tolist()


def _gpd_sample(xi, sigma, u, size, seed):
    """Scores: u + GPD excesses, each drawn once and counted in both orders (two ordered pairs)."""
    excess = stats.genpareto.rvs(xi, scale=sigma, size=size, random_state=np.random.default_rng(seed))
    return np.repeat(u + excess, 2), np.repeat(np.arange(size), 2)


@pytest.mark.parametrize("xi", [-0.25, 0.1])
def test_the_gpd_fit_recovers_the_shape_and_its_band_holds_the_true_rate(xi):
    u, sigma, size, n = 0.55, 0.03, 1500, 300_000_000
    scores, units = _gpd_sample(xi, sigma, u, size, seed=11)
    thresholds = pairs.grid()
    fitted = tail.fit_tail(scores, units, n, u, thresholds)
    assert fitted.xi == pytest.approx(xi, abs=0.06)
    assert fitted.sigma == pytest.approx(sigma, rel=0.12)
    assert fitted.exceedances == 2 * size
    lo, hi = fitted.xi_ci95
    assert lo < xi < hi
    # Truth: the rate beyond u (2 x size of n) times the true survival beyond u.
    for t in (0.58, 0.62, 0.66):
        row = fitted.band[np.isclose(fitted.band[:, 0], t)][0]
        truth = 2 * size / n * stats.genpareto.sf(t - u, xi, scale=sigma)
        assert row[2] <= truth <= row[3], (t, row, truth)
        assert row[2] <= row[1] <= row[3]
    assert fitted.band[0, 0] == pytest.approx(u) and fitted.band[-1, 0] == pytest.approx(0.9)


def test_a_small_group_takes_the_overall_shape_scaled_by_its_own_rate():
    scores, units = _gpd_sample(-0.2, 0.03, 0.55, 800, seed=5)
    overall = tail.fit_tail(scores, units, 10_000_000, 0.55, pairs.grid())
    # 20 ordered exceedances: 10 pairs of faces, each in both orders; of 1,000,000 ordered pairs.
    group = tail.proportional(20, 10, 1_000_000, overall)
    assert group.method == "proportional" and (group.u, group.xi) == (overall.u, overall.xi)
    np.testing.assert_allclose(group.band[:, 1], 20 / 1_000_000 * overall.conditional[:, 0])
    np.testing.assert_allclose(group.band[:, 3], wilson(10, 500_000).high * overall.conditional[:, 2])
    assert np.all(group.band[:, 3] >= group.band[:, 1]) and np.all(group.band[:, 2] <= group.band[:, 1])


def test_the_conservative_reading_uses_data_where_they_speak_then_the_fit_and_never_rises():
    thresholds = np.array([0.50, 0.55, 0.60, 0.65])
    band = np.array([[0.55, 1e-6, 5e-7, 2e-6], [0.60, 1e-8, 5e-9, 1e-7], [0.65, 1e-8, 1e-9, 1.5e-7]])
    fake = tail.Tail("gpd", 0.55, -0.2, 0.03, 100, 10**8, band, band[:, 1:])
    bound, speaks = tail.conservative(np.array([500, 12, 3, 0]), 10**8, thresholds, fake)
    assert speaks == ["data", "data", "fit", "fit"]
    assert bound[1] == pytest.approx(wilson(12, 10**8).high)
    # 0.60's own reading (1e-7) is below 0.65's (1.5e-7): made non-increasing, it takes 0.65's.
    assert bound[2] == bound[3] == 1.5e-7
    assert bound[0] == pytest.approx(wilson(500, 10**8).high)


def test_each_command_rewrites_only_its_own_sections(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(
        json.dumps(
            {
                "model_id": "m",
                "default_threshold": 0.69,
                "threshold_floor": 0.69,
                "basis": {"target": {"fpir": 1e-4}, "fmr": [[0.5, 1, 10]], "command": "old"},
            }
        )
    )
    calibration_file.update(path, "m", {"model_min": 0.5, "recall": {"single_shot": [[0.5, 9, 10]]}}, "eval", {"a": 1})
    calibration_file.update(path, "m", {"fmr": {"pairs": 7}}, "all_pairs", {"b": 2})
    calibration_file.update(
        path, "m", {"per_pass": {"ratio": 2.0}, "recall": {"per_pass": [[0.5, 1, 2]]}}, "video", {"c": 3}
    )
    calibration_file.update(path, "m", {"model_min": 0.52, "recall": {"single_shot": [[0.5, 8, 10]]}}, "eval", {"a": 4})
    data = json.loads(path.read_text())
    assert data == {
        "model_id": "m",
        "format": 2,
        "model_min": 0.52,
        "fmr": {"pairs": 7},
        "per_pass": {"ratio": 2.0},
        "recall": {"single_shot": [[0.5, 8, 10]], "per_pass": [[0.5, 1, 2]]},
        "basis": {"eval": {"a": 4}, "all_pairs": {"b": 2}, "video": {"c": 3}},
    }
    assert list(data) == ["model_id", "format", "model_min", "fmr", "per_pass", "recall", "basis"]


def _row(t, tpir_k, fmr_k, p_values):
    return {
        "threshold": t,
        "tpir": {"k": tpir_k, "n": 100},
        "fmr": {"k": fmr_k, "n": 1_000_000},
        "tests": {"fpir": dict(enumerate(p_values))},
    }


def test_the_model_range_from_one_view_of_lfr_eval():
    # Two attributes tested: alpha 0.05 becomes 0.025 per test.
    view = {
        "thresholds": [
            _row(0.50, 95, 20, [0.001, 0.5]),  # FMR 2e-5: above 1e-5
            _row(0.55, 80, 10, [0.5, 0.5]),  # FMR 1e-5: model_min; equitable, but 0.60 is not
            _row(0.60, 60, 4, [0.02, 0.5]),  # 0.02 < 0.025: a significant difference
            _row(0.65, 30, 1, [0.03, 0.9]),  # equitable from here up
            _row(0.70, 10, 0, [1.0, 1.0]),  # TPIR 10%: model_max
            _row(0.75, 9, 0, [1.0, 1.0]),
        ]
    }
    out = model_range(view, alpha=0.05)
    assert (out["model_min"], out["model_max"], out["equitability_floor"]) == (0.55, 0.70, 0.65)
    assert out["single_shot"][:2] == [[0.50, 95, 100], [0.55, 80, 100]]


def test_the_per_pass_ratio_and_its_upper_bound():
    # 1,000 shot pairs (10 faces x 100 entries) of which 40 score 0.5 and 12 score 0.6; 100 pass pairs
    # of which 8 reach 0.5 and 6 reach 0.6.
    scores = np.zeros((10, 100))
    scores.ravel()[:40] = 0.5
    scores.ravel()[:12] = 0.6
    faces = {"clip": SimpleNamespace(vectors=scores)}
    live = {"pass_pairs": [(8, 100), (6, 100), (0, 100)]}
    out = per_pass_ratio(live, faces, ["clip"], np.eye(100), [0.5, 0.6, 0.7])
    assert out["measured"] == [[0.5, 8, 100, 40, 1000], [0.6, 6, 100, 12, 1000], [0.7, 0, 100, 0, 1000]]
    # 0.5: 0.08 / 0.04 = 2; 0.6: 0.06 / 0.012 = 5 (12 >= MIN_PAIRS shot matches); 0.7: no shot match.
    assert MIN_PAIRS <= 12 and out["ratio"] == pytest.approx(5.0) and out["at"] == 0.6
    assert out["ratio_upper"] == pytest.approx(wilson(6, 100).high / wilson(12, 1000).low)
    assert out["ratio_upper"] > out["ratio"]
