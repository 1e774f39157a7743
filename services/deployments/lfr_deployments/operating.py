"""A deployment's operating point in its record: what its threshold was derived from, kept as JSON in
the record's `operating_point` field (written at create and at each review, read by the wire, the
report and the audit). Free of I/O."""

from __future__ import annotations

from dataclasses import asdict

from lfr_deployments.lifecycle import Threshold
from lfr_platform.rates import Rate


def _rate(rate: Rate | None) -> dict | None:
    return None if rate is None else {"k": rate.k, "n": rate.n, "low": rate.low, "high": rate.high}


def encode(threshold: Threshold) -> dict:
    point = threshold.point
    data = {
        **point.as_audit(),
        "model_max": point.model_max,
        "threshold_source": threshold.source,
        "recall": _rate(point.recall),
        "recall_single_shot": _rate(point.recall_single_shot),
        "tradeoff": [{**asdict(row), "recall": _rate(row.recall)} for row in threshold.tradeoff],
    }
    return data
