"""Enrolment photos decoded in worker processes the OS bounds (RLIMIT_AS): the bus probe's bombs are
refused image_too_complex in every format, a real photo still decodes, and this process grows by
the reduced photos only (issue 25, item 4; docs/decisions/0018)."""

import asyncio
import threading

import numpy as np
import psutil
import pytest

from lfr_deployments.decoding import DecoderPool
from lfr_faces import images
from lfr_testing import bombs
from lfr_testing.media import jpeg, lfw

MAX_SIDE = 2000
# This process's growth while bombs and photos are decoded over several streams: the pool's two
# reduced photos (12 MB each, and their pipe buffers) fit well under it; one multi-scan bomb
# decoded here would take +317 MB.
PARENT_GROWTH_LIMIT_MB = 150


def _flag(data: bytes) -> int:
    return images.plan(data, max_bytes=20 * 2**20, max_pixels=50_000_000, max_side=MAX_SIDE).flag


async def _outcome(pool: DecoderPool, data: bytes) -> str | tuple[int, ...]:
    try:
        return (await pool.decode(data, _flag(data))).shape
    except images.ImageRejected as exc:
        return exc.reason


@pytest.fixture
async def pool():
    decoders = DecoderPool(2, 256 * 2**20, MAX_SIDE)
    yield decoders
    await decoders.close()


async def test_the_probes_bombs_are_refused_in_every_format_and_this_process_stays_small(pool, data_dir, tmp_path):
    files = {}
    for name, data in bombs.all_bombs().items():  # made here, into tmp_path: never committed
        (tmp_path / name).write_bytes(data)
        files[name] = tmp_path / name
    photo = lfw(data_dir, "Colin_Powell", 1).read_bytes()
    work = [(name, path.read_bytes()) for name, path in files.items()] * 2 + [("photo", photo)] * 4
    me = psutil.Process()
    idle = me.memory_info().rss
    peak, done = [idle], threading.Event()

    def sample():
        while not done.is_set():
            peak.append(me.memory_info().rss)
            done.wait(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        streams = [work[i::4] for i in range(4)]  # four streams at once, two decoders

        async def stream(items):
            return [(name, await _outcome(pool, data)) for name, data in items]

        outcomes = {name: o for s in await asyncio.gather(*(stream(s) for s in streams)) for name, o in s}
    finally:
        done.set()
        sampler.join()
    assert outcomes == {
        "multi-scan baseline JPEG 7000": "image_too_complex",  # +317 MB in one decode: the probe's 70 MB "baseline"
        "progressive JPEG 4:4:4 7000": "image_too_complex",  # 294 MB of coefficients
        "progressive JPEG 4:2:0 5000": (MAX_SIDE, MAX_SIDE, 3),  # 75 MB of coefficients: fits, reduced
        "PNG 5500": (MAX_SIDE, MAX_SIDE, 3),  # 91 MB at full size: fits, reduced
        "PNG 16-bit RGBA 7000": "image_too_complex",
        "WebP 7000": "image_too_complex",
        "photo": (250, 250, 3),
    }
    growth_mb = (max(peak) - idle) / 2**20
    assert growth_mb < PARENT_GROWTH_LIMIT_MB, f"this process grew {growth_mb:.0f} MB"
    assert pool.replaced == 8  # each refusal had a fresh worker after it
    assert len(pool.pids()) <= 2


async def test_a_corrupt_photo_is_undecodable_not_too_complex_and_its_worker_stays(pool):
    good = jpeg(np.full((480, 640, 3), 90, np.uint8))
    png = bombs.png(64)
    corrupt = png[:60] + bytes(b ^ 0x5A for b in png[60:-12]) + png[-12:]  # its pixel data fails its CRC
    assert await _outcome(pool, corrupt) == "undecodable"
    assert await _outcome(pool, good) == (480, 640, 3)
    assert pool.replaced == 0


async def test_a_worker_that_died_idle_is_replaced_before_the_next_photo(pool):
    photo = jpeg(np.full((480, 640, 3), 90, np.uint8))
    assert await _outcome(pool, photo) == (480, 640, 3)
    [pid] = pool.pids()
    worker = psutil.Process(pid)
    worker.kill()  # as the OOM killer, or a decoder crashing, between two photos
    worker.wait(timeout=10)  # dead before the next photo (a kill is asynchronous: no race on when it lands)
    assert await _outcome(pool, photo) == (480, 640, 3)  # a fresh worker decodes it
    assert len(pool.pids()) == 1 and pool.pids() != [pid] and pool.replaced == 1
    # A worker that dies during its photo refuses it: test_a_decode_over_its_time_is_killed_and_refused.


async def test_a_decode_over_its_time_is_killed_and_refused():
    pool = DecoderPool(1, 256 * 2**20, MAX_SIDE, timeout_s=0.05)  # under a worker's start-up
    try:
        with pytest.raises(images.ImageRejected) as refused:
            await pool.decode(jpeg(np.full((48, 64, 3), 90, np.uint8)), _flag(jpeg(np.full((48, 64, 3), 90, np.uint8))))
        assert refused.value.reason == "image_too_complex" and "over 0.05 s" in refused.value.detail
    finally:
        await pool.close()
