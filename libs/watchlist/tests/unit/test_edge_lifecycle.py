"""The embedded index never touches a shard that was closed or dropped while a call waited for it
(an optimize run in a worker thread after an enrolment, as the service stops)."""

import threading
import time

import pytest

from lfr_watchlist import CollectionMissing
from lfr_watchlist.edge import EdgeIndex


@pytest.mark.parametrize("ending", ["close", "drop"])
def test_a_call_that_waited_for_a_closed_or_dropped_shard_finds_it_gone(tmp_path, ending):
    index = EdgeIndex(tmp_path)
    index.create("dep-a", 4)
    lock = index._locks["dep-a"]
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
    time.sleep(0.1)  # it waits for the shard's lock
    ending_call = threading.Thread(target=index.close if ending == "close" else lambda: index.drop("dep-a"))
    ending_call.start()
    time.sleep(0.1)
    lock.release()
    waiting.join(5)
    ending_call.join(5)
    assert outcome == {"optimize": "gone"}
    assert not index.exists("dep-a")
