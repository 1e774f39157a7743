"""Sampling a camera or a clip at the pipeline's rate (ingest live, the evaluation on recordings)."""

from lfr_faces.frames import Sampler


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
