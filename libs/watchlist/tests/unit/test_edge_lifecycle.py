"""The embedded index never touches a shard that was closed or dropped while a call waited for it
(an optimize run in a worker thread after an enrolment, as the service stops)."""

import threading

import pytest

from lfr_watchlist import CollectionMissing
from lfr_watchlist.edge import EdgeIndex


class ObservedLock:
    """A lock that tells how many threads wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self.waiting = 0

    def acquire(self, *args, **kwargs) -> bool:
        with self._changed:
            self.waiting += 1
            self._changed.notify_all()
        try:
            return self._lock.acquire(*args, **kwargs)
        finally:
            with self._changed:
                self.waiting -= 1

    def release(self) -> None:
        self._lock.release()

    __enter__ = acquire

    def __exit__(self, *exc) -> None:
        self.release()

    def until_waiting(self, n: int, timeout_s: float = 5.0) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self.waiting >= n, timeout_s), f"{n} waiting expected"


@pytest.mark.parametrize("ending", ["close", "drop"])
def test_a_call_that_waited_for_a_closed_or_dropped_shard_finds_it_gone(tmp_path, ending):
    index = EdgeIndex(tmp_path)
    index.create("dep-a", 4)
    lock = index._locks["dep-a"] = ObservedLock()
    lock.acquire()  # a call in progress on the shard
    outcome = {}

    def optimize():
        try:
            index.optimize("dep-a")
            outcome["optimize"] = "ran"
        except CollectionMissing:
            outcome["optimize"] = "gone"

    waiting = threading.Thread(target=optimize)
    waiting.start()
    lock.until_waiting(1)  # it waits for the shard's lock
    ending_call = threading.Thread(target=index.close if ending == "close" else lambda: index.drop("dep-a"))
    ending_call.start()
    lock.until_waiting(2)  # the close or drop too, the shard already out of the index's hands
    lock.release()
    waiting.join(5)
    ending_call.join(5)
    assert outcome == {"optimize": "gone"}
    assert not index.exists("dep-a")
