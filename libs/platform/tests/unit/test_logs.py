"""Logs an input can cause once per record are bounded (RateLimitedLog): a junk flood writes a few lines."""

import io
import logging

from lfr_platform.logs import RateLimitedLog, TextFormatter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, out


def test_a_flood_of_50k_dead_letters_writes_a_few_lines_and_says_how_many_it_held_back():
    logger, out = _logger("test.flood")
    clock = Clock()
    limited = RateLimitedLog(logger, per_interval=10, interval_s=60, clock=clock)
    written = 0
    for offset in range(50_000):
        reason = "malformed_message" if offset % 2 else "unknown_deployment"
        written += limited.warning(reason, "dead-lettered t[0]@%d: %s", offset, reason, extra={"reason": reason})
        clock.now += 0.0001  # 50k records in 5 s
    assert written == 20  # 10 per reason
    assert len(out.getvalue().encode()) < 5_000  # not 9 MB
    # The next minute: the first line of each reason says how many were held back.
    clock.now += 60
    assert limited.warning("malformed_message", "dead-lettered t[0]@%d: %s", 50_000, "malformed_message")
    last = out.getvalue().splitlines()[-1]
    assert "(24990 more like it not logged)" in last and "suppressed=24990" in last
    assert limited.warning("malformed_message", "dead-lettered t[0]@%d: %s", 50_001, "malformed_message")
    assert "more like it" not in out.getvalue().splitlines()[-1]  # said once


def test_keys_are_bounded_and_a_disabled_level_costs_nothing():
    logger, out = _logger("test.keys")
    limited = RateLimitedLog(logger, per_interval=1, max_keys=3, clock=Clock())
    for i in range(10):
        assert limited.warning(f"reason-{i}", "line %d", i)
    assert not limited.warning("reason-9", "again")  # one of the 3 keys kept: spent
    assert limited.warning("reason-0", "again")  # forgotten (the oldest): a line again, never unbounded memory
    logger.setLevel(logging.ERROR)
    assert not limited.warning("reason-new", "not written")
    assert len(out.getvalue().splitlines()) == 11
