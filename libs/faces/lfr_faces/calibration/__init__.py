"""Calibrated thresholds per model, written by `lfr eval --write-calibration` (see docs/evaluation.md).

A similarity score means nothing across models, so a threshold is never typed in: each model's
default threshold and floor come from its calibration file here, produced by the evaluation
harness on recorded data. A model without one cannot be deployed until it is calibrated (or the
platform team sets both values explicitly and owns them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Calibration:
    model_id: str
    default_threshold: float
    threshold_floor: float
    # How the figures were obtained: dataset, target, watchlist size, report path, date.
    basis: dict

    def lowest_threshold_at_fmr(self, fmr: float) -> float | None:
        """The lowest threshold of the calibration's grid at which two photos of different people
        score at or above it with at most this false match rate; None without an FMR curve."""
        meeting = [t for t, k, n in self.basis.get("fmr", []) if n and k / n <= fmr]
        return min(meeting) if meeting else None

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        return cls(
            model_id=data["model_id"],
            default_threshold=float(data["default_threshold"]),
            threshold_floor=float(data["threshold_floor"]),
            basis=dict(data.get("basis", {})),
        )


class CalibrationMissing(LookupError):
    pass


def calibration_path(model_id: str) -> Path:
    return Path(__file__).with_name(f"{model_id}.json")


def load(model_id: str) -> Calibration:
    path = calibration_path(model_id)
    if not path.is_file():
        raise CalibrationMissing(
            f"no calibration for model {model_id!r}: run `lfr eval --write-calibration` on it, "
            f"or set both LFR_DEPLOYMENTS_DEFAULT_THRESHOLD and LFR_DEPLOYMENTS_THRESHOLD_FLOOR"
        )
    return Calibration.from_dict(json.loads(path.read_text()))
