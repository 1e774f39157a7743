"""Time, given rather than taken: each service's build() takes a `clock`, and every window, expiry and
timeout it decides reads that clock (or a record's capture time), never `time.time()` deep inside. A
test moves the clock instead of waiting for time to pass; production gives the system's."""

from __future__ import annotations

import time
from collections.abc import Callable

# Seconds since the epoch, as time.time() gives them.
Clock = Callable[[], float]


def system() -> float:
    return time.time()
