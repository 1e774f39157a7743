"""Work that takes time, for the few unit tests whose subject is time itself (how long a stop grants a
task to clean up, what a call that swallows a cancellation does): a library call or a server's graceful
stop that takes this long. Never a wait for the system under test: that is `eventually`."""

from __future__ import annotations

import asyncio


async def takes(seconds: float) -> None:
    """A call that does not return before `seconds` have passed (and can be cancelled meanwhile)."""
    await asyncio.sleep(seconds)


async def forever() -> None:
    """A call that never returns by itself (a server serving): only a cancellation ends it."""
    await asyncio.Event().wait()
