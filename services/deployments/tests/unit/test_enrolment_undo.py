"""An enrolment Redis or the watchlist log could not record leaves nothing in the watchlist index, and
what reached the log is taken back on it (a fake store and log; the real EdgeIndex). The end-to-end
test restarts a real Redis mid-enrolment (tests/e2e/test_faults.py)."""

import asyncio

import numpy as np
import pytest
import redis.exceptions

from lfr.v1 import deployments_pb2 as pb
from lfr_deployments.lifecycle import ThresholdPolicy
from lfr_deployments.policy import SHIPPED, DeploymentPolicy
from lfr_deployments.service import DeploymentService
from lfr_faces import images
from lfr_faces.enrolment import Analysed
from lfr_platform.rpc import Unavailable
from lfr_testing.calibration import synthetic
from lfr_testing.deployments import provenance
from lfr_watchlist.edge import EdgeIndex


class AnalysesAnything:
    def plan(self, image: bytes) -> images.Decoding:
        return images.Decoding("JPEG", 1, 1, 0, peak_bytes=len(image), pixels_bytes=3, detail="a photo")

    def analyse(self, image: bytes, pixels: np.ndarray | None = None) -> Analysed:
        vector = np.random.default_rng(len(image)).standard_normal(128).astype(np.float32)
        return Analysed(vector / np.linalg.norm(vector), f"sha-{len(image)}", b"thumbnail")


class DecodesAnything:
    async def decode(self, data: bytes, flag: int) -> np.ndarray:
        return np.zeros((1, 1, 3), np.uint8)


class Log:
    """The watchlist log: keeps what it is given, or refuses it (the broker away)."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.changes = []

    async def publish(self, change) -> None:
        if self.refuse:
            raise Unavailable("the watchlist log (Kafka) did not take the change; retry")
        self.changes.append(change.WhichOneof("change"))


class Store:
    pending: dict[str, float]

    async def data_key(self, deployment_id: str) -> bytes:
        return bytes(32)

    async def pseudonym_key(self, deployment_id: str) -> bytes:
        return bytes(32)

    async def prepare_entry(self, deployment_id: str, entry_id: str, now: float) -> None:
        self.pending = {**getattr(self, "pending", {}), entry_id: now}

    async def drop_pending(self, deployment_id: str, entry_id: str) -> None:
        self.pending.pop(entry_id, None)

    async def image_enrolled(self, deployment_id: str, image_sha256: str) -> bool:
        return False


class SlowRedis(Store):
    """Records, slowly: the client goes away meanwhile."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.recorded = False

    async def record_enrolled(self, *args, **kwargs) -> int:
        await self.release.wait()
        self.recorded = True
        return 1


class RedisGoesAway(Store):
    """Answers until record_enrolled, which meets a Redis that is gone."""

    def __init__(self, fail_with: BaseException) -> None:
        self.fail_with = fail_with

    async def record_enrolled(self, *args, **kwargs) -> int:
        raise self.fail_with


def _service(index: EdgeIndex, store, log: Log | None = None) -> DeploymentService:
    return DeploymentService(
        store=store,
        index=index,
        watchlist_log=log or Log(),
        enroller=AnalysesAnything(),
        decoder=DecodesAnything(),
        closer=None,
        audit=None,
        auth=None,
        policy=ThresholdPolicy(synthetic(), 1 / 1000),
        default_size_limit=10,
        max_size_limit=10,
        duplicate_similarity=0.95,
        rules=DeploymentPolicy.load(SHIPPED),
    )


def _image() -> pb.WatchlistImage:
    return pb.WatchlistImage(
        **provenance(), image=b"jpeg", subject_id="S1", category="wanted", source_reference="ref", approved_by="B"
    )


async def test_an_enrolment_redis_did_not_record_is_removed_from_the_index_and_the_log(tmp_path):
    index = EdgeIndex(tmp_path)
    index.create("dep-a", 128)
    log = Log()
    store = RedisGoesAway(redis.exceptions.ConnectionError("Connection refused"))
    service = _service(index, store, log)
    with pytest.raises(redis.exceptions.ConnectionError):
        await service.enrolment.enrol_one("dep-a", _image(), who=None, threshold=0.69)
    assert index.count("dep-a") == 0 and store.pending == {}  # taken back: nothing for the janitor
    assert log.changes == ["upserted", "deleted"]  # the match replicas' copies take it back too
    index.close()


async def test_an_enrolment_the_log_did_not_take_is_removed_from_the_index_and_never_recorded(tmp_path):
    index = EdgeIndex(tmp_path)
    index.create("dep-a", 128)
    store = SlowRedis()
    store.release.set()
    service = _service(index, store, Log(refuse=True))
    with pytest.raises(Unavailable, match="watchlist log"):
        await service.enrolment.enrol_one("dep-a", _image(), who=None, threshold=0.69)
    assert index.count("dep-a") == 0 and not store.recorded
    index.close()


async def test_a_cancelled_enrolment_is_removed_from_the_index_too(tmp_path, eventually):
    index = EdgeIndex(tmp_path)
    index.create("dep-a", 128)
    service = _service(index, RedisGoesAway(asyncio.CancelledError()))
    with pytest.raises(asyncio.CancelledError):
        await service.enrolment.enrol_one("dep-a", _image(), who=None, threshold=0.69)
    await eventually(lambda: index.count("dep-a") == 0)  # undone in a worker thread
    index.close()


async def test_a_client_going_away_mid_record_leaves_the_record_and_the_entry_in_step(tmp_path, eventually):
    index = EdgeIndex(tmp_path)
    index.create("dep-a", 128)
    store = SlowRedis()
    service = _service(index, store)
    call = asyncio.create_task(service.enrolment.enrol_one("dep-a", _image(), who=None, threshold=0.69))
    # In the index; its record about to be written, or being written.
    await eventually(lambda: index.count("dep-a") == 1, interval_s=0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    store.release.set()  # the write completes after the client went away
    await eventually(lambda: store.recorded)

    def settled():  # the enrolment's shielded unit has ended: an undo, were there one, has run
        assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()], "still running"

    await eventually(settled)
    assert store.recorded and index.count("dep-a") == 1  # recorded, so kept: Redis and the index agree
    index.close()
