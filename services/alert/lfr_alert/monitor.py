"""The live equity monitor: false alerts per perceived group against the policy's reference shares,
for each open deployment and over the fleet's rolling window, exported as gauges that the rule
LfrFalseAlertDisparity reads (deploy/prometheus/rules/lfr-alerts.rules.yml).

State is in Redis, so that every alert replica exports the same figures: a deployment's counts are
its record's `stats:perceived_false:*` fields; the fleet's are one hash per UTC capture day
(`RedisKeys.false_alerts_by_group`), added to in the same transaction as the decision, and summed
over the window's days by the injected clock (the key's expiry only collects days no window spans).
The fleet is tested against the equity block of the newest deployment's record: the policy as it
stood at the latest creation, as every other policy value reaches alert.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from lfr_alert.adjudication import Change, perceived_deltas
from lfr_platform import metrics
from lfr_platform.equity import EquityPolicy, disparity, false_alerts_tested, perceived_counts
from lfr_platform.registry import STATS_PREFIX, DeploymentView, RedisKeys

log = logging.getLogger(__name__)

FLEET, DEPLOYMENT = "fleet", "deployment"
DAY_S = 86400


@dataclass(frozen=True)
class DayCounts:
    """What a decision adds to one capture day of the fleet's window."""

    day: str  # YYYY-MM-DD, UTC
    counts: dict[str, int]  # "<dimension>:<group>" -> n (a correction: -1 for what it took back)
    keep_until: float  # epoch seconds: no window of the deployment's policy spans the day after this


def fleet_counts(change: Change, policy: EquityPolicy | None) -> DayCounts | None:
    """The false alerts a decision adds to (or takes from) the fleet's window, by the alert's capture day."""
    counts = {f"{d}:{g}": n for (outcome, d, g), n in perceived_deltas(change).items() if outcome == "false"}
    if not counts or policy is None:
        return None
    day = datetime.fromtimestamp(change.alert.first_captured_at, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return DayCounts(day.date().isoformat(), counts, day.timestamp() + (policy.window_days + 1) * DAY_S)


def window_days(now: float, days: int) -> list[str]:
    """The UTC days of a rolling window of `days` ending today (today included)."""
    today = datetime.fromtimestamp(now, UTC).date()
    return [(today - timedelta(days=i)).isoformat() for i in range(days)]


class EquityMonitor:
    """Computes the figures and sets the gauges, at each sweep of alert."""

    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self.client = client
        self.keys = keys
        # The gauges' label values set, per (window, deployment_id): what to remove when it is no longer measured.
        self._series: dict[tuple[str, str], set[tuple[object, tuple[str, ...]]]] = {}
        self._flagged: set[tuple[str, ...]] = set()  # disparities already logged
        # The per-deployment counters start at 0 for every group of an open deployment's lists, so that
        # increase() counts the first false alert of a group.
        self.series = metrics.CameraSeries(
            (metrics.FALSE_ALERTS_BY_GROUP, ((),)), (metrics.FALSE_ALERTS_BY_GROUP_WITHDRAWN, ((),))
        )

    async def measure(self, now: float, open_deployments: list[DeploymentView], newest: DeploymentView | None) -> None:
        exported: set[tuple[str, str]] = set()
        for view in open_deployments:
            if view.equity is None:
                continue
            counts = await self._deployment_counts(view.deployment_id)
            self._export(DEPLOYMENT, view.deployment_id, counts, view.equity)
            exported.add((DEPLOYMENT, view.deployment_id))
        if newest is not None and newest.equity is not None:
            self._export(FLEET, "", await self._fleet_counts(now, newest.equity.window_days), newest.equity)
            exported.add((FLEET, ""))
        for gone in set(self._series) - exported:
            for gauge, labels in self._series.pop(gone):
                gauge.remove(*labels)
        self._flagged = {key for key in self._flagged if key[:2] in exported}
        self.series.keep(
            {
                (view.deployment_id, dimension, group)
                for view in open_deployments
                for dimension, groups in view.perceived_groups.items()
                for group in groups
            }
        )

    async def _deployment_counts(self, deployment_id: str) -> dict[str, dict[str, int]]:
        raw = await self.client.hgetall(self.keys.deployment(deployment_id))
        stats = {}
        for k, v in raw.items():
            name = k.decode() if isinstance(k, bytes) else k
            if name.startswith(STATS_PREFIX) and "@" not in name:
                stats[name.removeprefix(STATS_PREFIX)] = int(v)
        return perceived_counts(stats, "false")

    async def _fleet_counts(self, now: float, days: int) -> dict[str, dict[str, int]]:
        async with self.client.pipeline(transaction=False) as pipe:
            for day in window_days(now, days):
                pipe.hgetall(self.keys.false_alerts_by_group(day))
            per_day = await pipe.execute()
        counts: dict[str, dict[str, int]] = {}
        for raw in per_day:
            for k, v in raw.items():
                dimension, _, group = (k.decode() if isinstance(k, bytes) else k).partition(":")
                by_group = counts.setdefault(dimension, {})
                by_group[group] = by_group.get(group, 0) + int(v)
        return {d: {g: max(0, n) for g, n in groups.items()} for d, groups in counts.items()}

    def _export(self, window: str, deployment_id: str, counts: dict[str, dict[str, int]], policy: EquityPolicy) -> None:
        before = self._series.get((window, deployment_id), set())
        series = self._series[(window, deployment_id)] = set()

        def put(gauge, value: float, *labels: str) -> None:
            gauge.labels(window, deployment_id, *labels).set(value)
            series.add((gauge, (window, deployment_id, *labels)))

        put(metrics.EQUITY_P_VALUE_LIMIT, policy.p_value)
        put(metrics.EQUITY_MIN_FALSE_ALERTS, policy.min_false_alerts)
        for dimension, n in false_alerts_tested(counts, policy).items():
            put(metrics.EQUITY_FALSE_ALERTS_TESTED, n, dimension)
        for dimension, groups in counts.items():  # groups without a reference share (IC9) too
            for group, k in groups.items():
                put(metrics.EQUITY_FALSE_ALERTS, k, dimension, group)
        for test in disparity(counts, policy):
            put(metrics.EQUITY_FALSE_ALERTS, test.false_alerts, test.dimension, test.group)
            put(metrics.EQUITY_REFERENCE_SHARE, test.reference_share, test.dimension, test.group)
            put(metrics.EQUITY_P_VALUE, test.p_value, test.dimension, test.group)
            key = (window, deployment_id, test.dimension, test.group)
            if not test.flagged(policy):
                self._flagged.discard(key)
            elif key not in self._flagged:
                self._flagged.add(key)
                log.warning(
                    "false alerts fall on perceived %s %s more than its reference share: %d of %d (share %.3f), "
                    "p=%.2g: recommend a pause; a person decides",
                    test.dimension,
                    test.group,
                    test.false_alerts,
                    test.tested,
                    test.reference_share,
                    test.p_value,
                    extra={"window": window, "deployment_id": deployment_id},
                )
        for gauge, labels in before - series:  # a group no longer counted (its days left the window)
            gauge.remove(*labels)
