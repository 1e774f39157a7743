"""False alerts predicted for a deployment from its model's calibration, free of I/O.

The calibration (lfr_faces.calibration, written by `lfr eval`) counts, at each threshold of a grid,
how many of its impostor pairs (two photos of different people) score at or above it: the false
match rate (FMR). A face scanned against a watchlist of W entries alerts falsely with probability
about FMR x W (the sum over the entries: the pairwise model `lfr eval` calibrates the threshold
with); over N faces, N x FMR x W false alerts are expected. The interval is the Wilson 95% interval
of the FMR, scaled the same way (as the report's rates are).

The policy's limits are checked against the point estimate, the estimator the calibration chose the
threshold with: at the default threshold no impostor pair of the calibration scored that high, so
the upper bound says how large the calibration was (Wilson: 3.8 in 22.6 million pairs), not how the model
behaves. Both are shown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from lfr_platform.rates import wilson


@dataclass(frozen=True)
class Prediction:
    watchlist_size: int
    per_face: float
    per_face_lower_95: float
    per_face_upper_95: float
    expected_faces: int
    fmr_pairs: int
    override_reason: str = ""

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


def predict(
    fmr_curve: tuple[tuple[float, int, int], ...], threshold: float, watchlist_size: int, expected_faces: int
) -> Prediction | None:
    """None without an FMR curve (an uncalibrated model: nothing can be predicted). The FMR is the
    curve's at the highest grid threshold not above `threshold` (never an optimistic one)."""
    at_or_below = [(t, k, n) for t, k, n in fmr_curve if t <= threshold + 1e-9 and n]
    if not at_or_below:
        return None
    _, k, n = max(at_or_below)
    rate = wilson(k, n)
    return Prediction(
        watchlist_size=watchlist_size,
        per_face=min(1.0, k / n * watchlist_size),
        per_face_lower_95=min(1.0, rate.low * watchlist_size),
        per_face_upper_95=min(1.0, rate.high * watchlist_size),
        expected_faces=expected_faces,
        fmr_pairs=n,
    )


def check(prediction: Prediction, per_faces: int | None, per_deployment: float | None) -> None:
    """Raises OverLimit when the predicted false alerts are over the policy's limits."""
    if per_faces is not None and prediction.per_face > 1 / per_faces:
        raise OverLimit(
            f"predicted false alerts are 1 in {1 / prediction.per_face:,.0f} faces scanned "
            f"({prediction.watchlist_size:,} watchlist entries at this threshold), more than the policy's "
            f"1 in {per_faces:,} (max_false_alerts_per_faces)"
        )
    if per_deployment is not None and prediction.expected_faces and prediction.expected > per_deployment:
        raise OverLimit(
            f"{prediction.expected:,.1f} false alerts are predicted for {prediction.expected_faces:,} faces, "
            f"more than the policy's {per_deployment:g} per deployment (max_false_alerts_per_deployment)"
        )
