"""Helpers of the end-to-end tests, which drive the local stack's processes from outside: a
synchronous `eventually`, a figure read from a process's /metrics, and `lfr demo` run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


def eventually(check, timeout_s: float, interval_s: float = 0.5):
    """Call `check` until it returns without an AssertionError; return its value, or raise the last."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval_s)


def scraped(port: int, name: str, **labels: str) -> float | None:
    """The sum of the samples `name` whose labels include `labels`, from 127.0.0.1:`port`/metrics;
    None when there is none."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        families = text_string_to_metric_families(response.read().decode())
    values = [
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(values) if values else None


def run_demo(
    tmp_path: Path, data_dir: Path, models_dir: Path, *args: str, timeout: float = 600, **extra_env: str
) -> subprocess.CompletedProcess:
    """`lfr demo` in a process of its own, on its own broker and Redis (none of the caller's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LFR_KAFKA_", "LFR_REDIS_", "KAFKA_", "REDIS_"))}
    env.update(LFR_DATA_DIR=str(data_dir), LFR_MODELS_DIR=str(models_dir), **extra_env)
    return subprocess.run(
        [sys.executable, "-m", "lfr_cli.main", "demo", "--root", str(tmp_path / "run"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


# Each stage of the pipeline and the topic it consumes.
_INPUTS = {
    "detect": "frames.captured.v1",
    "embed": "faces.detected.v1",
    "match": "faces.embedded.v1",
    "alert": "matches.found.v1",
}


def drained(stack, stages: tuple[str, ...] = ("detect", "embed", "match", "alert")) -> None:
    """Raise AssertionError unless each of `stages` has no record of its input left to process (its
    consumer lag, which it reports every second, is 0 on every partition it consumes): what was in
    flight has gone through. Use it in `eventually`, once nothing new is produced."""
    prefix = stack.state.topic_prefix
    for stage in stages:
        topic = f"{prefix}{_INPUTS[stage]}"
        lags = [
            value
            for (name, labels), value in stack.scrape(stage).items()
            if name == "lfr_consumer_lag_records" and dict(labels).get("topic") == topic
        ]
        assert lags and sum(lags) == 0, (stage, topic, lags)


def grown(stack, service: str, metric: str, by: float, since: float, **labels: str) -> float:
    """The metric's total over the service's replicas; AssertionError until it is `by` over `since`."""
    from lfr_stack.stack import total

    now = total(stack.scrape(service), metric, **labels)
    assert now >= since + by, f"{service} {metric} {labels}: {now}, waiting for {since + by}"
    return now
