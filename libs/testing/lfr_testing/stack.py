"""Helpers of the end-to-end tests, which drive the local stack's processes from outside: a
synchronous `eventually`, and a figure read from a process's /metrics."""

from __future__ import annotations

import time
import urllib.request

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
