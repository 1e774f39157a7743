"""Logging to stderr as text for people or JSON for shippers, with `extra=` fields kept.

Never pass biometric data, tokens or keys to a logger. What a caller sent (an id, a reason) reaches a
log bounded and printable: every field and the message are cut at FIELD_LIMIT characters (marked) and
their control characters escaped, so that a request cannot write megabytes into the log nor forge a
line of its own with a newline.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
# The longest field (or message) written: beyond it, a marker says how much was cut.
FIELD_LIMIT = 2000
# The longest id (deployment, actor, role) an audit event or a refusal keeps. Beyond, the text is cut
# with a marker of how much: what a caller sends (a 3 MB deployment id with no token) costs it, not
# the audit trail that is kept forever.
ID_LIMIT = 256
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def printable(value: object, limit: int = FIELD_LIMIT) -> str:
    """`value` as text fit for a log line or an audit field: control characters escaped, at most `limit`
    characters kept (and a marker of what was cut)."""
    text = str(value)
    cut = len(text) - limit
    if cut > 0:
        text = text[:limit]
    text = text.translate(_CONTROL)
    return f"{text}…[{cut} more]" if cut > 0 else text


class RateLimitedLog:
    """At most `per_interval` lines per key (a reason) every `interval_s` seconds, for what an input
    can make happen once per record: a flood of 50,000 junk records wrote 9 MB of warnings, one per
    dead letter. The lines held back are counted, and the next line of that key that gets through says
    how many (`suppressed=N`); the metrics count every one. Keys are a closed vocabulary (reasons);
    beyond `max_keys` of them, the oldest is forgotten."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        per_interval: int = 10,
        interval_s: float = 60.0,
        max_keys: int = 1000,
        clock=time.monotonic,
    ) -> None:
        self.logger = logger
        self.per_interval = per_interval
        self.interval_s = interval_s
        self.max_keys = max_keys
        self.clock = clock
        self._windows: dict[str, list] = {}  # key -> [window start, lines written in it, held back since]

    def log(self, level: int, key: str, msg: str, *args, extra: dict | None = None) -> bool:
        """Log the line unless its key spent its lines in this interval; True when written."""
        if not self.logger.isEnabledFor(level):
            return False
        now = self.clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.interval_s:
            held = window[2] if window is not None else 0
            if window is None and len(self._windows) >= self.max_keys:
                self._windows.pop(next(iter(self._windows)))
            window = self._windows[key] = [now, 0, held]
        if window[1] >= self.per_interval:
            window[2] += 1
            return False
        window[1] += 1
        extra = dict(extra or {})
        if window[2]:
            extra["suppressed"] = window[2]
            msg += " (%d more like it not logged)"
            args = (*args, window[2])
            window[2] = 0
        self.logger.log(level, msg, *args, extra=extra)
        return True

    def warning(self, key: str, msg: str, *args, extra: dict | None = None) -> bool:
        return self.log(logging.WARNING, key, msg, *args, extra=extra)


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {
        k: v if isinstance(v, int | float | bool) or v is None else printable(v)
        for k, v in record.__dict__.items()
        if k not in _STANDARD and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": printable(record.getMessage()),
            **_extras(record),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = printable(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


def configure(level: str = "INFO", fmt: str = "text", service: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    if service:
        handler.addFilter(_ServiceFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries are chatty at INFO (every rebalance, every connection).
    for noisy in ("aiokafka", "kafka", "httpx", "grpc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


class _ServiceFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        return True
