from lfr_ingest.capture import CapturedFrame, DropOldestQueue, Sampler


def test_a_25_fps_file_sampled_at_5_fps_keeps_every_fifth_frame():
    sampler = Sampler(5)
    kept = [i for i in range(50) if sampler.keep(i / 25)]
    assert kept == list(range(0, 50, 5))


def test_a_source_slower_than_the_target_keeps_every_frame():
    sampler = Sampler(25)
    assert all(sampler.keep(i / 10) for i in range(20))


def test_after_a_stall_sampling_restarts_instead_of_bursting():
    sampler = Sampler(5)
    assert sampler.keep(0.0)
    assert sampler.keep(10.0)  # 10 s later: one frame, not 50 catching up
    assert not sampler.keep(10.05)
    assert sampler.keep(10.2)


def _frame(i: int) -> CapturedFrame:
    return CapturedFrame(sequence=i, captured_at=float(i), jpeg=b"", width=1, height=1)


def test_a_full_queue_drops_its_oldest_frame_and_counts_it():
    queue = DropOldestQueue(2)
    assert [queue.put(_frame(i)) for i in range(4)] == [False, False, True, True]
    assert queue.dropped == 2
    assert [queue.get().sequence, queue.get().sequence, queue.get()] == [2, 3, None]
