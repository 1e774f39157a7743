"""A budget of memory that enrolment photos reserve while they are decoded and analysed.

Each photo reserves what decoding and analysing it will take at most (Enroller.plan, read from its
header), and waits, in arrival order, until that much is free; a photo that needs more than the whole
budget is refused before any pixel is decoded. So the memory enrolment adds stays under the budget
whatever the photos (baseline or progressive JPEG, PNG) and however many streams send them.
(asyncio has no weighted semaphore; this is one, first come first served.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class MemoryBudget:
    def __init__(self, total_bytes: int) -> None:
        self.total = total_bytes
        self.free = total_bytes
        self.most_reserved = 0  # the high-water mark, for benchmarks and tests
        self._waiting: deque[tuple[int, asyncio.Future]] = deque()

    @contextlib.asynccontextmanager
    async def reserve(self, amount: int):
        """Hold `amount` bytes of the budget for the block (ValueError if over the whole budget)."""
        if amount > self.total:
            raise ValueError(f"{amount} bytes is over the whole budget of {self.total}")
        if self._waiting or self.free < amount:
            granted = asyncio.get_running_loop().create_future()
            entry = (amount, granted)
            self._waiting.append(entry)
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._release(amount)  # granted just as it was cancelled: give it back
                else:
                    self._waiting.remove(entry)
                    self._grant()  # the ones behind it may fit now
                raise
        else:
            self.free -= amount
        self.most_reserved = max(self.most_reserved, self.total - self.free)
        try:
            yield
        finally:
            self._release(amount)

    def _release(self, amount: int) -> None:
        self.free += amount
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self._waiting[0][0] <= self.free:
            amount, granted = self._waiting.popleft()
            self.free -= amount
            granted.set_result(None)
