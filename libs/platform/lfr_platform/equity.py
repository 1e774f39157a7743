"""The equity monitor's arithmetic: whom false alerts fall on, against whom one would expect them to.

An officer may record, with an adjudication, how they perceived the person: sex and ethnicity, each
from a closed list of the force's policy (the UK's IC codes as shipped). They are perceptions, not
what the person would say of themselves, and they are kept only as counts per group (the deployment
record's stats fields, and the fleet window's daily counts): docs/deletion.md.

For a dimension, n is the false alerts whose perceived group has a reference share in the policy
(e.g. the area's census share; a group without one, such as IC9 "not known", is counted but not
tested) and k those of one group; the exact binomial test asks how likely k or more false alerts on
that group would be if each fell on it with its reference share (one-sided: false alerts falling on
a group *more* often than its share; one falling short makes another over-represented, and that one
is tested). A p-value below the policy's, with at least its minimum of false alerts tested, is a
disparity to look at: it recommends a pause, and a person decides.

Used by alert (the live monitor, its metrics) and the deployments service (the report): the stats
names, the policy block copied into each deployment record, and the test are one definition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

# The perceived dimensions an adjudication may carry (AdjudicateAlertRequest.perceived_*).
DIMENSIONS = ("sex", "ethnicity")
# The outcomes counted per perceived group (an undetermined alert tells nothing of whom it fell on).
COUNTED_OUTCOMES = ("true", "false")
# Stats fields of the deployment record: `stats:perceived_<outcome>:<dimension>:<group>`, deployment-wide
# only (no per-van split: fewer, larger counts).
PERCEIVED = "perceived_"


def stat_name(outcome: str, dimension: str, group: str) -> str:
    return f"{PERCEIVED}{outcome}:{dimension}:{group}"


def parse_stat_name(name: str) -> tuple[str, str, str] | None:
    """(outcome, dimension, group) of a perceived-group stats name, None for any other name."""
    if not name.startswith(PERCEIVED):
        return None
    parts = name.removeprefix(PERCEIVED).split(":")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def perceived_counts(stats: Mapping[str, int], outcome: str) -> dict[str, dict[str, int]]:
    """Counts per dimension and group of one outcome, from deployment-wide stats names (negative: 0)."""
    counts: dict[str, dict[str, int]] = {}
    for name, n in stats.items():
        parsed = parse_stat_name(name)
        if parsed is not None and parsed[0] == outcome:
            counts.setdefault(parsed[1], {})[parsed[2]] = max(0, int(n))
    return counts


@dataclass(frozen=True)
class EquityPolicy:
    """The policy's `equity` block, as copied into each deployment record at creation."""

    # dimension -> group -> its share of the reference population (summing to 1 over its groups).
    reference_shares: Mapping[str, Mapping[str, float]]
    p_value: float  # a group tested below this is a disparity...
    min_false_alerts: int  # ...once at least this many false alerts are tested in its dimension
    window_days: int  # the fleet's rolling window

    def to_json(self) -> str:
        return json.dumps(
            {
                "reference_shares": {d: dict(s) for d, s in self.reference_shares.items()},
                "p_value": self.p_value,
                "min_false_alerts": self.min_false_alerts,
                "window_days": self.window_days,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> EquityPolicy:
        data = json.loads(text)
        return cls(
            reference_shares={
                d: {g: float(s) for g, s in shares.items()} for d, shares in data["reference_shares"].items()
            },
            p_value=float(data["p_value"]),
            min_false_alerts=int(data["min_false_alerts"]),
            window_days=int(data["window_days"]),
        )


@dataclass(frozen=True)
class GroupTest:
    """One group's false alerts against its reference share."""

    dimension: str
    group: str
    false_alerts: int  # k
    tested: int  # n: the dimension's false alerts whose group has a reference share
    reference_share: float
    p_value: float  # P(X >= k), X ~ Binomial(n, reference_share); 1 when nothing is tested

    @property
    def share(self) -> float | None:
        return self.false_alerts / self.tested if self.tested else None

    def flagged(self, policy: EquityPolicy) -> bool:
        """Below the policy's p-value with at least its minimum of false alerts tested."""
        return self.tested >= policy.min_false_alerts and self.p_value < policy.p_value


def binomial_p_value(k: int, n: int, share: float) -> float:
    """The exact one-sided binomial test: P(X >= k) for X ~ Binomial(n, share); 1.0 for k == 0."""
    if n <= 0 or k <= 0:
        return 1.0
    # Imported here: scipy.stats takes 0.7 s to import, which a service that never tests need not pay.
    from scipy.stats import binomtest

    return float(binomtest(k, n, share, alternative="greater").pvalue)


def false_alerts_tested(counts: Mapping[str, Mapping[str, int]], policy: EquityPolicy) -> dict[str, int]:
    """n per dimension with reference shares: the false alerts on a group that has one."""
    return {
        dimension: sum(max(0, counts.get(dimension, {}).get(g, 0)) for g in shares)
        for dimension, shares in policy.reference_shares.items()
    }


def disparity(counts: Mapping[str, Mapping[str, int]], policy: EquityPolicy) -> list[GroupTest]:
    """Every group with a reference share, tested: `counts` are false alerts per dimension and group."""
    n = false_alerts_tested(counts, policy)
    results = []
    for dimension, shares in policy.reference_shares.items():
        for group, share in shares.items():
            k = max(0, counts.get(dimension, {}).get(group, 0))
            results.append(
                GroupTest(dimension, group, k, n[dimension], share, binomial_p_value(k, n[dimension], share))
            )
    return results
