"""Run a service's main coroutine until SIGTERM or SIGINT, then let it shut down in order."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

log = logging.getLogger(__name__)


def run(main: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Call `main(stop)`; `stop` is set on SIGTERM/SIGINT and main is expected to return soon after."""

    async def _runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    try:
        asyncio.run(_runner())
    except StartRefused as exc:  # found once running (it needed the broker or Redis to know)
        log.error("refused to start: %s", exc)
        return 2
    except Exception:
        log.exception("service failed")
        return 1
    return 0


async def until_stopped(stop: asyncio.Event, *tasks: asyncio.Task, grace_s: float = 15.0) -> None:
    """Wait for `stop` or for any task to end (a crash), then cancel the rest and re-raise a crash.

    A cancelled task gets `grace_s` to clean up (stop its servers and clients, each bounded well
    under it); one still running then has swallowed its cancellation without meaning to (a library's
    asyncio.wait_for whose awaitable finished at the same moment: Python 3.11, cpython gh-86296) and
    is cancelled again, every second, until it ends (docs/decisions/0010)."""
    stopper = asyncio.create_task(stop.wait(), name="stop")
    done, _ = await asyncio.wait({stopper, *tasks}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    for task in tasks:
        task.cancel()
    _, pending = await asyncio.wait(tasks, timeout=grace_s) if tasks else (set(), set())
    while pending:
        names = sorted(t.get_name() for t in pending)
        log.warning("%s still running %.0f s after its cancellation: cancelled again", names, grace_s)
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    await asyncio.gather(stopper, *tasks, return_exceptions=True)
    for task in done:
        if task is not stopper and not task.cancelled() and task.exception():
            raise task.exception()  # type: ignore[misc]
    log.info("stopped")


def honour_cancellation() -> None:
    """Raise CancelledError if this task was cancelled and something swallowed it (a library's
    asyncio.wait_for on Python 3.11, cpython gh-86296): the task's own count of cancellation
    requests still says so. Every periodic loop calls it each round (through `pause`), so that a stop
    ends it at once instead of at until_stopped's second cancellation, 15 s later."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def pause(seconds: float) -> None:
    """A periodic loop's wait between rounds: asyncio.sleep, never past a swallowed cancellation."""
    honour_cancellation()
    await asyncio.sleep(seconds)


class StartRefused(RuntimeError):
    """A service refuses to start, and says why (settings that contradict each other, a replica that
    disagrees with its peers): the process ends with status 2 and this message."""


def main(service: str, build: Callable, *settings_classes: type) -> int:
    """A service's whole __main__: settings -> logging -> run(build(settings)).

    Bad settings (a misspelt LFR_* variable, a value out of range) end the process at start with a
    message naming the variable, exit status 2.
    """
    from lfr_platform import logs
    from lfr_platform.settings import PlatformSettings, UnknownSettingError, reject_unknown_variables

    try:
        reject_unknown_variables(service, PlatformSettings, *settings_classes)
        platform = PlatformSettings()
        settings = [cls() for cls in settings_classes]
    except (UnknownSettingError, ValidationError) as exc:
        print(f"{service}: invalid settings: {exc}", file=sys.stderr)  # noqa: T201 - logging is not set up yet
        return 2
    logs.configure(platform.log_level, platform.log_format, service=service)
    try:
        shell = build(platform, *settings)
    except StartRefused as exc:
        log.error("%s refused to start: %s", service, exc)
        return 2
    except Exception:
        log.exception("%s could not start", service)
        return 1
    return run(shell.run)
