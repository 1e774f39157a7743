"""False alerts predicted for a deployment from its model's calibration, free of I/O.

The calibration (lfr_faces.calibration, written by `lfr eval`) gives, at each threshold, the false
match rate (FMR: two faces of different people scoring at or above it) overall and per group of the
passer-by, counted over every pair of different people in the evaluation data and, where the counts
run out, from a fit of the tail. A pass is searched several times, so it meets a stranger's entry more
often than one shot: the per-pass ratio. A face scanned against W entries alerts falsely with
probability about FMR x W x ratio; over N faces, N times that.

Three figures are kept: the central estimate (overall FMR x W x the measured ratio), its lower bound,
and the conservative one the policy's budget is checked against and the threshold is derived from:
the worst group's 95% upper FMR x W x the ratio's upper bound. The budget protects every group.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from lfr_faces.calibration import Calibration


@dataclass(frozen=True)
class Prediction:
    watchlist_size: int  # entries (images and templates)
    per_face: float
    per_face_lower_95: float
    per_face_upper_95: float  # the conservative side: the worst group's, checked against the budget
    expected_faces: int
    fmr_pairs: int
    override_reason: str = ""
    threshold: float | None = None  # None in records made before 2026-12 (scaled as they were)
    group: str = ""  # the group whose curve gave the upper bound

    @property
    def expected(self) -> float:
        return self.per_face * self.expected_faces

    @property
    def expected_interval(self) -> tuple[float, float]:
        return self.per_face_lower_95 * self.expected_faces, self.per_face_upper_95 * self.expected_faces

    def for_faces(self, faces: int) -> Prediction:
        return Prediction(**{**asdict(self), "expected_faces": faces})

    def for_watchlist(self, size: int) -> Prediction:
        """The same rates for another watchlist size (the enrolled one)."""
        scale = size / self.watchlist_size if self.watchlist_size else 0.0
        return Prediction(
            **{
                **asdict(self),
                "watchlist_size": size,
                "per_face": min(1.0, self.per_face * scale),
                "per_face_lower_95": min(1.0, self.per_face_lower_95 * scale),
                "per_face_upper_95": min(1.0, self.per_face_upper_95 * scale),
            }
        )

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Prediction:
        return cls(**data)


class OverLimit(ValueError):
    """The prediction is over the policy's limit; the message says by how much and what to do."""


def predict(calib: Calibration, threshold: float, watchlist_size: int, expected_faces: int) -> Prediction:
    """The false alerts `watchlist_size` entries raise at `threshold`, per face scanned and for the faces
    expected. Each curve is read at the highest grid threshold not above `threshold` (never an optimistic one)."""
    entries = max(1, watchlist_size)
    overall = calib.overall
    central, low, _ = overall.estimate(threshold)
    upper, group = calib.predicted_fpir_upper(threshold, entries)
    return Prediction(
        watchlist_size=watchlist_size,
        per_face=min(1.0, central * entries * calib.ratio),
        per_face_lower_95=min(1.0, low * entries * calib.ratio),
        per_face_upper_95=upper,
        expected_faces=expected_faces,
        fmr_pairs=overall.pairs,
        threshold=threshold,
        group=group,
    )


def one_in(rate: float) -> str:
    """A rate as people read it: "1 in 6,000"."""
    return "none" if rate <= 0 else f"1 in {1 / rate:,.0f}"


def check(prediction: Prediction, budget: float | None, per_deployment: float | None) -> None:
    """Raises OverLimit when the predicted false alerts are over the policy's limits (the budget on the
    conservative side, the per-deployment limit on the central estimate)."""
    if budget is not None and prediction.per_face_upper_95 > budget * (1 + 1e-9):
        raise OverLimit(
            f"predicted false alerts are up to {one_in(prediction.per_face_upper_95)} faces scanned "
            f"({prediction.watchlist_size:,} watchlist entries at this threshold; {prediction.group}), more than "
            f"the policy's {one_in(budget)} (false_alert_budget)"
        )
    if per_deployment is not None and prediction.expected_faces and prediction.expected > per_deployment:
        raise OverLimit(
            f"{prediction.expected:,.1f} false alerts are predicted for {prediction.expected_faces:,} faces, "
            f"more than the policy's {per_deployment:g} per deployment (max_false_alerts_per_deployment)"
        )
