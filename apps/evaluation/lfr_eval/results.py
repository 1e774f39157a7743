"""From decided searches to rates per threshold, overall and per demographic group."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from lfr_eval.experiment import Search
from lfr_eval.rates import Rate, difference_test, fpir_at_size, rates_over_thresholds, rescale_fpir, wilson

# Images without a label for an attribute: reported as a group, left out of the difference tests.
UNLABELLED = "unlabelled"


@dataclass(frozen=True)
class Attribute:
    """A demographic column of one source: e.g. ("utkface", "race_utk")."""

    source: str
    column: str

    @property
    def name(self) -> str:
        return f"{self.source}.{self.column}"


def _groups(searches: list[Search], attribute: Attribute) -> dict[str, list[Search]]:
    out: dict[str, list[Search]] = {}
    for s in searches:
        if s.source == attribute.source:
            out.setdefault(s.labels.get(attribute.column) or UNLABELLED, []).append(s)
    return dict(sorted(out.items()))


class _Decisions:
    """Each search decided once per threshold (by match's decide), then counted per grouping."""

    def __init__(self, thresholds: list[float]) -> None:
        self.thresholds = thresholds
        self._memo: dict[int, np.ndarray] = {}

    def _row(self, s: Search) -> np.ndarray:
        if id(s) not in self._memo:
            decide = s.identified if s.mate is not None else s.false_positive
            self._memo[id(s)] = np.array([s.acquired and decide(t) for t in self.thresholds], dtype=bool)
        return self._memo[id(s)]

    def mated(self, searches: list[Search]) -> list[tuple[int, int]]:
        """(identified, all mated searches) per threshold: a probe with no vector is a miss."""
        hits = sum((self._row(s).astype(int) for s in searches), np.zeros(len(self.thresholds), int))
        return [(int(k), len(searches)) for k in hits]

    def nonmated(self, searches: list[Search]) -> list[tuple[int, int]]:
        """(false positives, acquired non-mated searches) per threshold."""
        acquired = [s for s in searches if s.acquired]
        hits = sum((self._row(s).astype(int) for s in acquired), np.zeros(len(self.thresholds), int))
        return [(int(k), len(acquired)) for k in hits]


def compute(
    *,
    mated: list[Search],
    nonmated: list[Search],
    impostors: np.ndarray,
    thresholds: list[float],
    watchlist_size: int,
    target_size: int,
    mated_attributes: list[Attribute],
    nonmated_attributes: list[Attribute],
    min_group_n: int,
) -> dict:
    """Everything report.json holds about one view of the data (as labelled, or as reviewed)."""
    decisions = _Decisions(thresholds)
    tp = decisions.mated(mated)
    fp = decisions.nonmated(nonmated)
    pairs = rates_over_thresholds(impostors, thresholds)
    by_attribute_mated = {a.name: _groups(mated, a) for a in mated_attributes}
    by_attribute_nonmated = {a.name: _groups(nonmated, a) for a in nonmated_attributes}
    group_tp = {a: {g: decisions.mated(ss) for g, ss in groups.items()} for a, groups in by_attribute_mated.items()}
    group_fp = {
        a: {g: decisions.nonmated(ss) for g, ss in groups.items()} for a, groups in by_attribute_nonmated.items()
    }
    rows = []
    for i, t in enumerate(thresholds):
        fmr = wilson(*pairs[i])
        fpir = wilson(*fp[i])
        row = {
            "threshold": t,
            "tpir": wilson(*tp[i]).as_dict(),
            "fnir": wilson(tp[i][1] - tp[i][0], tp[i][1]).as_dict(),
            "fpir": fpir.as_dict(),
            "fmr": fmr.as_dict(),
            "fpir_at_target_size": {
                "from_fmr": fpir_at_size(fmr.value or 0.0, target_size),
                "from_fmr_ci95_high": fpir_at_size(fmr.high, target_size),
                "rescaled_from_fpir": rescale_fpir(fpir.value or 0.0, watchlist_size, target_size),
                "label": f"extrapolation to a {target_size}-entry watchlist assuming independent comparisons",
            },
            "groups": {"tpir": {}, "fnir": {}, "fpir": {}},
            "tests": {"fnir": {}, "fpir": {}},
        }
        for attribute, groups in group_tp.items():
            row["groups"]["tpir"][attribute] = {g: _flag(wilson(*c[i]), min_group_n) for g, c in groups.items()}
            row["groups"]["fnir"][attribute] = {
                g: _flag(wilson(c[i][1] - c[i][0], c[i][1]), min_group_n) for g, c in groups.items()
            }
            row["tests"]["fnir"][attribute] = difference_test(
                [(c[i][1] - c[i][0], c[i][1]) for g, c in groups.items() if g != UNLABELLED]
            )
        for attribute, groups in group_fp.items():
            row["groups"]["fpir"][attribute] = {g: _flag(wilson(*c[i]), min_group_n) for g, c in groups.items()}
            row["tests"]["fpir"][attribute] = difference_test([c[i] for g, c in groups.items() if g != UNLABELLED])
        rows.append(row)
    acquired_nonmated = sum(s.acquired for s in nonmated)
    return {
        "watchlist_size": watchlist_size,
        "mated_searches": len(mated),
        "nonmated_searches": len(nonmated),
        "nonmated_acquired": acquired_nonmated,
        "impostor_pairs": int(len(impostors)),
        "max_impostor_score": float(impostors[-1]) if len(impostors) else None,
        "rank1": wilson(sum(s.rank_one() for s in mated), len(mated)).as_dict(),
        "rank1_groups": {
            a: {g: _flag(wilson(sum(s.rank_one() for s in ss), len(ss)), min_group_n) for g, ss in groups.items()}
            for a, groups in by_attribute_mated.items()
        },
        "resolution": {
            "fpir_ci95_high_with_zero_observed": wilson(0, acquired_nonmated).high,
            "fmr_ci95_high_with_zero_observed": wilson(0, len(impostors)).high,
            "fpir_at_target_size_ci95_high_with_zero_observed": fpir_at_size(
                wilson(0, len(impostors)).high, target_size
            ),
        },
        "probe_failures": {
            "mated": _failures(mated, by_attribute_mated),
            "nonmated": _failures(nonmated, by_attribute_nonmated),
        },
        "thresholds": rows,
    }


def _flag(rate: Rate, min_group_n: int) -> dict:
    out = rate.as_dict()
    if rate.n < min_group_n:
        out["warning"] = f"n={rate.n} is below {min_group_n}: read the interval, not the rate"
    return out


def _failures(searches: list[Search], by_attribute: dict[str, dict[str, list[Search]]]) -> dict:
    return {
        "overall": dict(Counter(s.status for s in searches if not s.acquired)),
        "groups": {
            a: {g: {"failed": sum(not s.acquired for s in ss), "n": len(ss)} for g, ss in groups.items()}
            for a, groups in by_attribute.items()
        },
    }


def recommend(view: dict, target_fpir: float, target_size: int, alpha: float) -> dict:
    """The lowest threshold of the grid that meets the FPIR target at the target watchlist size
    (from the per-comparison FMR, and from the measured FPIR rescaled) with no statistically
    significant FPIR difference between groups (Bonferroni over the attributes tested)."""
    rows = view["thresholds"]
    for row in rows:
        tests = row["tests"]["fpir"]
        corrected = alpha / max(1, len(tests))
        extrapolated = row["fpir_at_target_size"]
        meets = extrapolated["from_fmr"] <= target_fpir and extrapolated["rescaled_from_fpir"] <= target_fpir
        equitable = all(p >= corrected for p in tests.values())
        if meets and equitable:
            resolution = view["resolution"]["fpir_at_target_size_ci95_high_with_zero_observed"]
            return {
                "threshold": row["threshold"],
                "tpir": row["tpir"],
                "fpir": row["fpir"],
                "fpir_at_target_size": extrapolated,
                "fpir_group_tests": tests,
                "target": {
                    "fpir": target_fpir,
                    "watchlist_size": target_size,
                    "alpha": alpha,
                    "alpha_per_test": corrected,
                },
                "resolved_by_data": extrapolated["from_fmr_ci95_high"] <= target_fpir,
                "note": (
                    "The target is below what these data can resolve (with no impostor pair at or above "
                    f"a threshold, the 95% upper bound of FPIR at {target_size} entries is still "
                    f"{resolution:.2e}): the recommendation rests on the point estimate, i.e. on no "
                    "impostor comparison scoring at or above it."
                    if extrapolated["from_fmr_ci95_high"] > target_fpir
                    else "The target is resolved by the data."
                ),
            }
    return {"threshold": None, "note": "no threshold of the grid meets the target with equitable FPIR"}


# The model's range, as `lfr eval --write-calibration` records it (calibration format 2).
MODEL_MIN_FMR = 1e-5  # below this threshold, one comparison in 100,000 of different people matches
MODEL_MAX_TPIR = 0.10  # above this one, a single shot finds fewer than one person in ten


def model_range(view: dict, alpha: float) -> dict:
    """model_min, model_max, equitability_floor and the single-shot recall curve of one view.

    - model_min: the lowest grid threshold whose impostor FMR (k/n, every probe x watchlist pair of
      different people) is at most MODEL_MIN_FMR;
    - model_max: the highest grid threshold with single-shot TPIR at least MODEL_MAX_TPIR;
    - equitability_floor: the lowest grid threshold at which, and at every grid threshold above it, no
      group difference in FPIR is significant (the tests recommend() applies: alpha / attributes).
    Each is None when no grid threshold qualifies.
    """
    rows = view["thresholds"]
    low_fmr = [r["threshold"] for r in rows if r["fmr"]["n"] and r["fmr"]["k"] / r["fmr"]["n"] <= MODEL_MIN_FMR]
    finds = [r["threshold"] for r in rows if r["tpir"]["n"] and r["tpir"]["k"] / r["tpir"]["n"] >= MODEL_MAX_TPIR]
    floor = None
    for row in sorted(rows, key=lambda r: r["threshold"], reverse=True):
        tests = row["tests"]["fpir"]
        if not all(p >= alpha / max(1, len(tests)) for p in tests.values()):
            break
        floor = row["threshold"]
    return {
        "model_min": min(low_fmr) if low_fmr else None,
        "model_max": max(finds) if finds else None,
        "equitability_floor": floor,
        "single_shot": [[r["threshold"], r["tpir"]["k"], r["tpir"]["n"]] for r in rows],
    }
