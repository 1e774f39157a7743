"""A proportion and its Wilson score interval: the evaluation harness's error rates and the deployment
report's false-alert rates are both stated this way, so that small counts are not over-read."""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    k: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    def as_dict(self) -> dict:
        return {"rate": self.value, "k": self.k, "n": self.n, "ci95": [self.low, self.high]}


def wilson(k: int, n: int, z: float = Z95) -> Rate:
    """Wilson score interval; for n == 0 the interval is [0, 1] (nothing is known)."""
    if n == 0:
        return Rate(0, 0, 0.0, 1.0)
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Rate(k, n, max(0.0, centre - half), min(1.0, centre + half))
