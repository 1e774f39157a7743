"""The watchlist index: one collection per deployment, created with it and dropped with it.

A library, not match's own: match searches it live, and the evaluation harness and `make bench`
measure the very same code (with the decision rule, lfr_watchlist.decision).

Two adapters behind one Protocol, chosen by configuration: qdrant-edge runs the Qdrant engine in
this process (the default: no server to run, HNSW search under a millisecond at 200k entries), and
qdrant-client talks to a Qdrant server when a URL is set (docker-compose, Helm, several match
replicas). See docs/decisions/0001-embedded-qdrant-edge.md for the measurements behind the choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Entry:
    """One enrolled image: its vector and its provenance manifest (never the image itself). Or a
    subject's template (`template_of` > 0, lfr_watchlist.templates): fused from that many of its
    photo entries, holding no image of its own; its reference is the photo entry named."""

    entry_id: str  # a UUID
    vector: np.ndarray
    subject_id: str
    category: str
    source_reference: str
    approved_by: str
    enrolled_at: float
    image_sha256: str
    template_of: int = 0
    reference_entry_id: str = ""

    def payload(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "subject_id": self.subject_id,
            "category": self.category,
            "source_reference": self.source_reference,
            "approved_by": self.approved_by,
            "enrolled_at": self.enrolled_at,
            "image_sha256": self.image_sha256,
        }
        if self.template_of:
            payload |= {TEMPLATE_OF: self.template_of, "reference_entry_id": self.reference_entry_id}
        return payload

    @classmethod
    def stored(cls, point_id: object, vector, payload: dict | None) -> Entry:
        """An entry as an index holds it (its point's id, vector and payload)."""
        p = payload or {}
        return cls(
            entry_id=str(point_id),
            vector=np.asarray(vector, dtype=np.float32),
            subject_id=str(p.get("subject_id", "")),
            category=str(p.get("category", "")),
            source_reference=str(p.get("source_reference", "")),
            approved_by=str(p.get("approved_by", "")),
            enrolled_at=float(p.get("enrolled_at", 0.0)),
            image_sha256=str(p.get("image_sha256", "")),
            template_of=int(p.get(TEMPLATE_OF, 0)),
            reference_entry_id=str(p.get("reference_entry_id", "")),
        )


# The payload key of a template's photo count (absent on a photo's entry, as on every entry stored
# before templates): a range filter on it tells templates apart (a boolean match did not, in qdrant-edge).
TEMPLATE_OF = "template_of"


@dataclass(frozen=True)
class Hit:
    entry_id: str
    subject_id: str
    category: str
    score: float
    source_reference: str = ""  # where the enrolled image came from (names it to a person)

    @classmethod
    def stored(cls, point_id: object, payload: dict | None, score: float) -> Hit:
        """A search result. A template's hit names its reference photo's entry: the image an officer
        compares the face with (a template has none of its own)."""
        p = payload or {}
        return cls(
            str(p.get("reference_entry_id") or point_id),
            str(p.get("subject_id", "")),
            str(p.get("category", "")),
            float(score),
            str(p.get("source_reference", "")),
        )


class WatchlistIndex(Protocol):
    def create(self, deployment_id: str, dimension: int) -> None: ...

    def drop(self, deployment_id: str) -> int:
        """Delete the collection; returns how many entries it held (0 if it did not exist)."""
        ...

    def exists(self, deployment_id: str) -> bool: ...

    def collections(self) -> list[str]:
        """Deployment ids that have a collection: what a deletion proof lists."""
        ...

    def upsert(self, deployment_id: str, entries: list[Entry]) -> None: ...

    def delete(self, deployment_id: str, entry_ids: list[str]) -> None:
        """Remove entries (an enrolment undone: Redis could not record it)."""
        ...

    def search(
        self,
        deployment_id: str,
        vector: np.ndarray,
        k: int,
        exact: bool = False,
        subject_id: str | None = None,
        except_subject_id: str | None = None,
    ) -> list[Hit]:
        """Up to k entries by descending cosine similarity; `exact` scans every entry instead of the
        index; `subject_id` searches only that subject's entries, `except_subject_id` every other's."""
        ...

    def entries(self, deployment_id: str) -> list[Entry]:
        """Every entry with its vector: what a subject's template is fused from (lfr_watchlist.templates)."""
        ...

    def count(self, deployment_id: str, templates: bool = True) -> int:
        """Entries; without the subjects' templates when `templates` is False (the images enrolled)."""
        ...

    def optimize(self, deployment_id: str) -> None:
        """Build the search index after a bulk enrolment (a no-op where the engine does it itself)."""
        ...

    def close(self) -> None: ...


class CollectionMissing(KeyError):
    pass


# A best score this close below the threshold is re-checked by exact search: HNSW disagreed with exact
# search once in 1,000 near the threshold without it, never with it (decision 0001).
EXACT_RECHECK_MARGIN = 0.05


def search_for_decision(
    index: WatchlistIndex,
    deployment_id: str,
    vector: np.ndarray,
    k: int,
    threshold: float,
    margin: float = EXACT_RECHECK_MARGIN,
) -> list[Hit]:
    """Top-k for a match decision at `threshold`: the approximate index, re-checked by an exact scan
    when its best score falls just below the threshold (within `margin`), where an approximate miss
    would turn a match into a non-match. Far below, the decision cannot change; above, it is a match
    whatever the exact order."""
    hits = index.search(deployment_id, vector, k)
    if hits and threshold - margin <= hits[0].score < threshold:
        return index.search(deployment_id, vector, k, exact=True)
    return hits


def with_runner_up(
    index: WatchlistIndex, deployment_id: str, vector: np.ndarray, hits: list[Hit], k: int, threshold: float
) -> list[Hit]:
    """`hits` (a decision's top k) with the runner-up of a match among them: the best entry of another
    subject than the best's (lfr_watchlist.decision). It is there unless every one of the k is the
    best subject's own (several photos of one person); then one more search, of every other subject's
    entries, finds it. Only a match needs one; none is found on a watchlist of one subject."""
    if len(hits) < k or not hits or max(h.score for h in hits) < threshold:
        return hits
    best = max(hits, key=lambda h: h.score)
    if any(h.subject_id != best.subject_id for h in hits):
        return hits
    return hits + index.search(deployment_id, vector, 1, except_subject_id=best.subject_id)


def open_index(settings, data_dir) -> WatchlistIndex:
    """The index `settings` (lfr_platform.settings.WatchlistIndexSettings) name: the Qdrant server at
    its URL, or the embedded engine with its shards under `data_dir`."""
    if settings.qdrant_url:
        from lfr_watchlist.server import ServerIndex

        return ServerIndex.connect(
            settings.qdrant_url,
            settings.qdrant_api_key,
            collection_prefix=settings.collection_prefix,
            hnsw_ef=settings.hnsw_ef,
        )
    from lfr_watchlist.edge import EdgeIndex

    return EdgeIndex(data_dir, hnsw_ef=settings.hnsw_ef)
