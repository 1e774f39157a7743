"""WatchlistIndex on a Qdrant server through qdrant-client: collection `<prefix><deployment id>`.

The same client also runs in its local mode (`location=":memory:"`), which the tests use to check
this adapter without a server; it is a linear scan, too slow for production watchlists.
"""

from __future__ import annotations

import numpy as np
from qdrant_client import QdrantClient, models

from lfr_watchlist import TEMPLATE_OF, CollectionMissing, Entry, Hit


class ServerIndex:
    def __init__(self, client: QdrantClient, collection_prefix: str = "lfr-", hnsw_ef: int = 256) -> None:
        self.client = client
        self.prefix = collection_prefix
        self.search_params = models.SearchParams(hnsw_ef=hnsw_ef)

    @classmethod
    def connect(cls, url: str, api_key: str | None = None, **kwargs) -> ServerIndex:
        client = (
            QdrantClient(location=url, api_key=api_key) if url == ":memory:" else QdrantClient(url=url, api_key=api_key)
        )
        return cls(client, **kwargs)

    def _name(self, deployment_id: str) -> str:
        return f"{self.prefix}{deployment_id}"

    def create(self, deployment_id: str, dimension: int) -> None:
        if self.exists(deployment_id):
            return
        self.client.create_collection(
            self._name(deployment_id),
            vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
        )

    def drop(self, deployment_id: str) -> int:
        if not self.exists(deployment_id):
            return 0
        count = self.count(deployment_id)
        self.client.delete_collection(self._name(deployment_id))
        return count

    def exists(self, deployment_id: str) -> bool:
        return self.client.collection_exists(self._name(deployment_id))

    def collections(self) -> list[str]:
        names = [c.name for c in self.client.get_collections().collections]
        return sorted(n[len(self.prefix) :] for n in names if n.startswith(self.prefix))

    def upsert(self, deployment_id: str, entries: list[Entry]) -> None:
        self._require(deployment_id)
        self.client.upsert(
            self._name(deployment_id),
            points=[
                models.PointStruct(id=e.entry_id, vector=e.vector.astype(np.float32).tolist(), payload=e.payload())
                for e in entries
            ],
            wait=True,
        )

    def delete(self, deployment_id: str, entry_ids: list[str]) -> None:
        self._require(deployment_id)
        self.client.delete(self._name(deployment_id), points_selector=models.PointIdsList(points=entry_ids), wait=True)

    def search(
        self,
        deployment_id: str,
        vector: np.ndarray,
        k: int,
        exact: bool = False,
        subject_id: str | None = None,
        except_subject_id: str | None = None,
    ) -> list[Hit]:
        self._require(deployment_id)
        only = None
        if subject_id or except_subject_id:

            def subject(value: str) -> list:
                return [models.FieldCondition(key="subject_id", match=models.MatchValue(value=value))]

            only = models.Filter(
                must=subject(subject_id) if subject_id else None,
                must_not=subject(except_subject_id) if except_subject_id else None,
            )
        result = self.client.query_points(
            self._name(deployment_id),
            query=vector.astype(np.float32).tolist(),
            limit=k,
            with_payload=True,
            query_filter=only,
            search_params=models.SearchParams(exact=True) if exact else self.search_params,
        )
        return [Hit.stored(p.id, p.payload, p.score) for p in result.points]

    def entries(self, deployment_id: str) -> list[Entry]:
        self._require(deployment_id)
        out: list[Entry] = []
        offset = None
        while True:
            page, offset = self.client.scroll(
                self._name(deployment_id), limit=1024, offset=offset, with_payload=True, with_vectors=True
            )
            out += [Entry.stored(p.id, p.vector, p.payload) for p in page]
            if offset is None:
                return out

    def count(self, deployment_id: str, templates: bool = True) -> int:
        self._require(deployment_id)
        only = None
        if not templates:
            only = models.Filter(must_not=[models.FieldCondition(key=TEMPLATE_OF, range=models.Range(gt=0))])
        return self.client.count(self._name(deployment_id), count_filter=only, exact=True).count

    def optimize(self, deployment_id: str) -> None:
        """The server indexes in the background by itself."""

    def close(self) -> None:
        self.client.close()

    def _require(self, deployment_id: str) -> None:
        if not self.exists(deployment_id):
            raise CollectionMissing(deployment_id)
