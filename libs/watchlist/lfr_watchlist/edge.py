"""WatchlistIndex on qdrant-edge: one shard folder per deployment under the data folder.

Shards persist, so a restarted match keeps its watchlists; dropping one closes it and removes its
folder. Calls come from worker threads, so each shard has a lock.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from pathlib import Path

import numpy as np
from qdrant_edge import (
    CountRequest,
    Distance,
    EdgeConfig,
    EdgeShard,
    EdgeVectorParams,
    FieldCondition,
    Filter,
    HnswIndexConfig,
    MatchValue,
    Point,
    Query,
    QueryRequest,
    RangeFloat,
    ScrollRequest,
    SearchParams,
    UpdateOperation,
)

from lfr_watchlist import TEMPLATE_OF, CollectionMissing, Entry, Hit

log = logging.getLogger(__name__)

_SCROLL_PAGE = 1024


class EdgeIndex:
    def __init__(
        self,
        data_dir: Path,
        *,
        hnsw_m: int = 16,
        hnsw_ef_construct: int = 128,
        hnsw_ef: int = 256,
        full_scan_threshold_kb: int = 1024,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.hnsw = HnswIndexConfig(
            m=hnsw_m, ef_construct=hnsw_ef_construct, full_scan_threshold=full_scan_threshold_kb
        )
        self.search_params = SearchParams(hnsw_ef=hnsw_ef)
        self.exact_params = SearchParams(exact=True)
        self._shards: dict[str, EdgeShard] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        for folder in sorted(p for p in self.data_dir.iterdir() if p.is_dir()):
            self._shards[folder.name] = EdgeShard.load(str(folder))
            self._locks[folder.name] = threading.Lock()
        if self._shards:
            log.info("loaded %d watchlist shard(s) from %s", len(self._shards), self.data_dir)

    def create(self, deployment_id: str, dimension: int) -> None:
        with self._guard:
            if deployment_id in self._shards:
                return
            config = EdgeConfig(
                vectors=EdgeVectorParams(size=dimension, distance=Distance.Cosine), hnsw_config=self.hnsw
            )
            self._shards[deployment_id] = EdgeShard.create(str(self.data_dir / deployment_id), config)
            self._locks[deployment_id] = threading.Lock()

    def drop(self, deployment_id: str) -> int:
        with self._guard:
            shard = self._shards.pop(deployment_id, None)
            lock = self._locks.pop(deployment_id, None)
        count = 0
        if shard is not None and lock is not None:
            with lock:
                count = shard.count(CountRequest(exact=True))
                shard.close()
        shutil.rmtree(self.data_dir / deployment_id, ignore_errors=True)
        return count

    def exists(self, deployment_id: str) -> bool:
        return deployment_id in self._shards

    def collections(self) -> list[str]:
        on_disk = {p.name for p in self.data_dir.iterdir() if p.is_dir()}
        return sorted(on_disk | set(self._shards))

    def upsert(self, deployment_id: str, entries: list[Entry]) -> None:
        points = [Point(e.entry_id, e.vector.astype(np.float32).tolist(), e.payload()) for e in entries]
        with self._using(deployment_id) as shard:
            shard.update(UpdateOperation.upsert_points(points))
            shard.flush()

    def delete(self, deployment_id: str, entry_ids: list[str]) -> None:
        with self._using(deployment_id) as shard:
            shard.update(UpdateOperation.delete_points(entry_ids))
            shard.flush()

    def search(
        self,
        deployment_id: str,
        vector: np.ndarray,
        k: int,
        exact: bool = False,
        subject_id: str | None = None,
        except_subject_id: str | None = None,
    ) -> list[Hit]:
        params = self.exact_params if exact else self.search_params
        only = None
        if subject_id or except_subject_id:
            only = Filter(
                must=[FieldCondition("subject_id", match=MatchValue(subject_id))] if subject_id else None,
                must_not=[FieldCondition("subject_id", match=MatchValue(except_subject_id))]
                if except_subject_id
                else None,
            )
        request = QueryRequest(
            limit=k,
            query=Query.Nearest(vector.astype(np.float32).tolist()),
            with_payload=True,
            params=params,
            filter=only,
        )
        with self._using(deployment_id) as shard:
            points = shard.query(request)
        return [Hit.stored(p.id, p.payload, p.score) for p in points]

    def entries(self, deployment_id: str) -> list[Entry]:
        out: list[Entry] = []
        offset = None
        with self._using(deployment_id) as shard:
            while True:
                page, offset = shard.scroll(
                    ScrollRequest(offset=offset, limit=_SCROLL_PAGE, with_payload=True, with_vector=True)
                )
                out += [Entry.stored(p.id, p.vector, p.payload) for p in page]
                if offset is None:
                    return out

    def count(self, deployment_id: str, templates: bool = True) -> int:
        only = None if templates else Filter(must_not=[FieldCondition(TEMPLATE_OF, range=RangeFloat(gt=0))])
        with self._using(deployment_id) as shard:
            return shard.count(CountRequest(exact=True, filter=only))

    def optimize(self, deployment_id: str) -> None:
        with self._using(deployment_id) as shard:
            shard.optimize()

    def close(self) -> None:
        """Close every shard, each once the call on it in a worker thread (an upsert, an optimize
        after an enrolment) has finished; a call that was waiting for it then finds it gone."""
        with self._guard:
            shards = list(self._shards.items())
            self._shards.clear()
        for deployment_id, shard in shards:
            with self._locks[deployment_id]:
                shard.close()

    @contextlib.contextmanager
    def _using(self, deployment_id: str):
        """The shard, with its lock held, if it is still open once the lock is had: a call that
        waited while the shard was dropped or closed must not touch it (an optimize run on a closed
        shard left it empty on disk)."""
        try:
            shard, lock = self._shards[deployment_id], self._locks[deployment_id]
        except KeyError:
            raise CollectionMissing(deployment_id) from None
        with lock:
            if self._shards.get(deployment_id) is not shard:
                raise CollectionMissing(deployment_id)
            yield shard
