"""A model's calibration, and the operating point it gives a deployment (docs/evaluation.md).

A similarity score means nothing across models, so a threshold is never typed in: it follows from
the model's measured curves, kept here per model (`<model_id>.json`) and written by `lfr eval`:

- `fmr`: the false match rate by threshold, overall and per demographic group of the passer-by,
  counted over every pair of different people in the shared data (`lfr eval --all-pairs`), with a
  generalised Pareto fit of the tail and its 95% band where the counts run out;
- `per_pass`: how much more likely a pass (several shots, each searched) is than one shot to meet a
  stranger's entry, with its counts (`lfr eval --video`);
- `recall`: the share of listed people found, per shot and per pass (`lfr eval`, `lfr eval --video`);
- `equitability_floor`: the lowest threshold from which no group's false alerts differ
  significantly; `model_min` / `model_max`: the range in which the model is used at all.

The operating point of a deployment is the lowest threshold that is at or above the equitability
floor and the model minimum, and at which the predicted false alerts per face scanned, taken on the
conservative side everywhere (the worst group's 95% upper FMR x entries x the per-pass ratio's upper
bound), stay within the force's budget. A small, targeted list thus finds more of its people at the
same risk to everyone else; a list too large for the budget below `model_max` gets no threshold.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from lfr_platform.rates import Rate, wilson

FORMAT = 2
# Below this many impostor pairs at or above a threshold, the counts no longer speak: the tail fit does.
DATA_SPEAK_K = 10
# A group's curve bounds the operating point only with at least this many faces (smaller ones are
# reported, with their intervals, and never used to lower the threshold either).
MIN_GROUP_FACES = 100
OVERALL = "all"
# What each section is written by: a file without it cannot be used, and the error says what to run.
WRITERS = {
    "fmr": "lfr eval --all-pairs --write-calibration (make eval-all-pairs)",
    "per_pass": "lfr eval --video --write-calibration (make eval-video)",
    "recall": "lfr eval --write-calibration and lfr eval --video --write-calibration (make calibrate)",
    "equitability_floor": "lfr eval --write-calibration (make eval)",
    "model_min": "lfr eval --write-calibration (make eval)",
    "model_max": "lfr eval --write-calibration (make eval)",
}


class CalibrationMissing(LookupError):
    pass


class CalibrationIncomplete(ValueError):
    """A calibration file lacks a section the operating point needs; the message names the command."""


@dataclass(frozen=True)
class Curve:
    """One false match rate curve: counts per grid threshold, and the tail's fitted band."""

    name: str
    faces: int
    thresholds: tuple[float, ...]
    counts: tuple[tuple[int, int], ...]  # (k, n) per threshold
    band: dict[float, tuple[float, float, float]]  # the tail fit's FMR and 95% band per threshold (t >= u)
    method: str
    upper: tuple[float, ...]  # conservative FMR per threshold, non-increasing

    @classmethod
    def from_dict(cls, name: str, data: dict) -> Curve:
        points = sorted((round(float(t), 4), int(k), int(n)) for t, k, n in data["points"])
        tail = data.get("tail") or {}
        band = {round(float(t), 4): (float(fit), float(low), float(high)) for t, fit, low, high in tail.get("band", [])}
        raw = []
        for t, k, n in points:
            if k >= DATA_SPEAK_K or t not in band:
                raw.append(wilson(k, n).high)  # the data speak (or nothing else does)
            else:
                raw.append(band[t][2])  # the fit speaks
        upper, running = [], 0.0
        for value in reversed(raw):  # a higher threshold never matches more: keep the bound non-increasing
            running = max(running, value)
            upper.append(running)
        return cls(
            name=name,
            faces=int(data.get("faces", 0)),
            thresholds=tuple(t for t, _, _ in points),
            counts=tuple((k, n) for _, k, n in points),
            band=band,
            method=str(tail.get("method", "")),
            upper=tuple(reversed(upper)),
        )

    def _index(self, threshold: float) -> int | None:
        """The highest grid threshold not above `threshold` (never an optimistic one)."""
        i = bisect.bisect_right(self.thresholds, threshold + 1e-9) - 1
        return i if i >= 0 else None

    def fmr_upper(self, threshold: float) -> float:
        i = self._index(threshold)
        return 1.0 if i is None else self.upper[i]

    @property
    def pairs(self) -> int:
        return self.counts[0][1] if self.counts else 0

    def estimate(self, threshold: float) -> tuple[float, float, float]:
        """(FMR, 95% low, 95% high) at the threshold: the counts where they speak, else the tail fit."""
        i = self._index(threshold)
        if i is None:
            return 1.0, 1.0, 1.0
        t, (k, n) = self.thresholds[i], self.counts[i]
        if k < DATA_SPEAK_K and t in self.band:
            return self.band[t]
        rate = wilson(k, n)
        return (k / n if n else 1.0), rate.low, rate.high

    def speaks(self, threshold: float) -> str:
        """Who speaks for the FMR at this threshold: "data" or "fit"."""
        i = self._index(threshold)
        return "data" if i is None or self.counts[i][0] >= DATA_SPEAK_K else "fit"

    def empirical(self, threshold: float) -> Rate:
        i = self._index(threshold)
        return wilson(0, 0) if i is None else wilson(*self.counts[i])


@dataclass(frozen=True)
class Tradeoff:
    """One row of what an authorising officer weighs: a list's size, its threshold, what it costs."""

    entries: int
    threshold: float | None  # None: no threshold up to the model's maximum meets the budget
    predicted_fpir_upper: float | None  # per face scanned (per pass), the conservative side
    recall: Rate | None  # per-pass recall at the threshold, measured on the calibration's passes
    group: str  # the curve that bound the prediction (the worst group at the threshold)


@dataclass(frozen=True)
class OperatingPoint:
    """A deployment's derived threshold and everything it was derived from (audited, reported)."""

    entries: int
    budget: float  # most false alerts per face scanned (per pass)
    threshold: float | None
    bound_by: str  # "budget", "equitability_floor" or "model_min": which of the three set it
    group: str  # the group whose curve gave the prediction at the threshold
    predicted_fpir_upper: float | None
    ratio_upper: float
    curve_version: str
    equitability_floor: float
    model_min: float
    model_max: float
    recall: Rate | None
    recall_single_shot: Rate | None
    largest_list: int  # the most entries any threshold up to model_max admits under the budget

    def as_audit(self) -> dict:
        return {
            "entries": self.entries,
            "budget": self.budget,
            "threshold": self.threshold,
            "bound_by": self.bound_by,
            "group": self.group,
            "predicted_fpir_upper": self.predicted_fpir_upper,
            "per_pass_ratio_upper": self.ratio_upper,
            "curve_version": self.curve_version,
            "equitability_floor": self.equitability_floor,
            "model_min": self.model_min,
            "largest_list": self.largest_list,
        }


@dataclass(frozen=True)
class Calibration:
    model_id: str
    model_min: float
    model_max: float
    equitability_floor: float
    curves: dict[str, Curve]
    ratio: float
    ratio_upper: float
    recall_per_pass: tuple[tuple[float, int, int], ...]
    recall_single_shot: tuple[tuple[float, int, int], ...]
    version: str
    basis: dict

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        missing = [key for key in WRITERS if key not in data]
        fmr, per_pass, recall = data.get("fmr") or {}, data.get("per_pass") or {}, data.get("recall") or {}
        if "fmr" not in missing and (OVERALL not in fmr.get("curves", {}) or len(fmr["curves"]) < 2):
            missing.append("fmr")  # the overall curve and at least one group's
        if "per_pass" not in missing and not {"ratio", "ratio_upper"} <= per_pass.keys():
            missing.append("per_pass")
        if "recall" not in missing and not {"single_shot", "per_pass"} <= recall.keys():
            missing.append("recall")
        if missing:
            raise CalibrationIncomplete(
                f"the calibration of {data.get('model_id', '?')!r} lacks "
                + "; ".join(f"{key} (written by `{WRITERS[key]}`)" for key in missing)
                + ": a threshold cannot be derived without the model's curves (docs/evaluation.md)"
            )
        canonical = {key: data[key] for key in sorted(WRITERS)}
        version = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:12]
        return cls(
            model_id=data["model_id"],
            model_min=float(data["model_min"]),
            model_max=float(data["model_max"]),
            equitability_floor=float(data["equitability_floor"]),
            curves={name: Curve.from_dict(name, curve) for name, curve in fmr["curves"].items()},
            ratio=float(per_pass["ratio"]),
            ratio_upper=max(1.0, float(per_pass["ratio_upper"]), float(per_pass["ratio"])),
            recall_per_pass=tuple((float(t), int(k), int(n)) for t, k, n in recall["per_pass"]),
            recall_single_shot=tuple((float(t), int(k), int(n)) for t, k, n in recall["single_shot"]),
            version=version,
            basis=dict(data.get("basis", {})),
        )

    @property
    def overall(self) -> Curve:
        return self.curves[OVERALL]

    @property
    def thresholds(self) -> tuple[float, ...]:
        return self.overall.thresholds

    @property
    def lowest_usable(self) -> float:
        """No threshold is derived, or accepted by override, below this."""
        return self.model_min

    def lowest_threshold_at_fmr(self, fmr: float) -> float | None:
        """The lowest grid threshold at which at most this share of pairs of different people score at
        or above it (the overall empirical curve); None if none does."""
        meeting = [t for t, (k, n) in zip(self.thresholds, self.overall.counts, strict=True) if n and k / n <= fmr]
        return min(meeting) if meeting else None

    def worst(self, threshold: float) -> tuple[str, float]:
        """The group (or overall) curve with the highest conservative FMR at the threshold."""
        usable = [c for c in self.curves.values() if c.name == OVERALL or c.faces >= MIN_GROUP_FACES]
        curve = max(usable, key=lambda c: (c.fmr_upper(threshold), c.name == OVERALL))
        return curve.name, curve.fmr_upper(threshold)

    def predicted_fpir_upper(self, threshold: float, entries: int) -> tuple[float, str]:
        """False alerts per face scanned (per pass) on the conservative side, and the group that gave it."""
        group, fmr = self.worst(threshold)
        return min(1.0, fmr * max(1, entries) * self.ratio_upper), group

    def recall_at(self, threshold: float, per_pass: bool = True) -> Rate | None:
        rows = self.recall_per_pass if per_pass else self.recall_single_shot
        at_or_below = [(t, k, n) for t, k, n in rows if t <= threshold + 1e-9 and n]
        if not at_or_below:
            return None
        _, k, n = max(at_or_below)
        return wilson(k, n)

    def largest_list(self, budget: float) -> int:
        """The most entries any threshold up to the model's maximum admits under the budget."""
        _, fmr = self.worst(self.model_max)
        if fmr <= 0:
            return 10**9
        return int(budget / (fmr * self.ratio_upper))

    def operating_point(self, entries: int, budget: float) -> OperatingPoint:
        if not 0.0 < budget < 1.0:
            raise ValueError(f"a false-alert budget is a rate between 0 and 1, not {budget!r}")
        lowest = max(self.equitability_floor, self.model_min)
        chosen, bound_by = None, "budget"
        for t in self.thresholds:
            if t + 1e-9 < lowest or t > self.model_max + 1e-9:
                continue
            if self.predicted_fpir_upper(t, entries)[0] <= budget:
                chosen = t
                if abs(t - lowest) < 1e-9 and t > self.thresholds[0]:
                    # met already at the lowest admissible threshold: a floor set it, not the budget
                    below, _ = self.predicted_fpir_upper(self.thresholds[self.thresholds.index(t) - 1], entries)
                    if below <= budget:
                        bound_by = "equitability_floor" if self.equitability_floor >= self.model_min else "model_min"
                break
        at = chosen if chosen is not None else self.model_max
        fpir, group = self.predicted_fpir_upper(at, entries)
        return OperatingPoint(
            entries=entries,
            budget=budget,
            threshold=chosen,
            bound_by=bound_by,
            group=group,
            predicted_fpir_upper=fpir,
            ratio_upper=self.ratio_upper,
            curve_version=self.version,
            equitability_floor=self.equitability_floor,
            model_min=self.model_min,
            model_max=self.model_max,
            recall=self.recall_at(at) if chosen is not None else None,
            recall_single_shot=self.recall_at(at, per_pass=False) if chosen is not None else None,
            largest_list=self.largest_list(budget),
        )

    def tradeoff(self, entries: int, budget: float, multiples: tuple[int, ...] = (1, 3, 10)) -> list[Tradeoff]:
        """The operating point for this list and for lists `multiples` times larger."""
        rows = []
        for m in multiples:
            point = self.operating_point(max(1, entries) * m, budget)
            rows.append(Tradeoff(point.entries, point.threshold, point.predicted_fpir_upper, point.recall, point.group))
        return rows


def calibration_path(model_id: str) -> Path:
    return Path(__file__).with_name(f"{model_id}.json")


def load(model_id: str, path: Path | None = None) -> Calibration:
    path = path or calibration_path(model_id)
    if not path.is_file():
        raise CalibrationMissing(
            f"no calibration for model {model_id!r} ({path}): run `make calibrate` (lfr eval, lfr eval --all-pairs "
            "and lfr eval --video, each with --write-calibration; docs/evaluation.md)"
        )
    return Calibration.from_dict(json.loads(path.read_text()))
