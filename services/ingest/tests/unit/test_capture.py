from lfr_ingest.capture import CapturedFrame, DropOldestQueue


def _frame(i: int) -> CapturedFrame:
    return CapturedFrame(sequence=i, captured_at=float(i), jpeg=b"", width=1, height=1)


def test_a_full_queue_drops_its_oldest_frame_and_counts_it():
    queue = DropOldestQueue(2)
    assert [queue.put(_frame(i)) for i in range(4)] == [False, False, True, True]
    assert queue.dropped == 2
    assert [queue.get().sequence, queue.get().sequence, queue.get()] == [2, 3, None]
