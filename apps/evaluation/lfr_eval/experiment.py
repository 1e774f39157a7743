"""The identification experiment: a watchlist in the live index, every probe searched and decided
by match's own code (lfr_watchlist, lfr_watchlist.decision.decide)."""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lfr_watchlist import Entry, Hit
from lfr_watchlist.decision import decide
from lfr_watchlist.edge import EdgeIndex

TOP_K = 5
_DEPLOYMENT = "evaluation"


@dataclass(frozen=True)
class Enrolled:
    subject_id: str
    image_key: str
    path: Path
    vector: np.ndarray
    filler: bool
    labels: dict[str, str]


@dataclass
class Search:
    key: str
    path: Path
    source: str  # the dataset or non-mated set it comes from
    mate: str | None  # the enrolled identity it should find; None for non-mated probes
    labels: dict[str, str]
    status: str  # "ok" or why the probe produced no vector
    vector: np.ndarray | None = None
    hits: list[Hit] = field(default_factory=list)

    @property
    def acquired(self) -> bool:
        return self.vector is not None

    def identified(self, threshold: float) -> bool:
        """Mated: the best candidate is the mate and scores at or above the threshold."""
        d = decide(self.hits, threshold)
        return d.matched and d.best is not None and d.best.subject_id == self.mate

    def false_positive(self, threshold: float) -> bool:
        """Non-mated: any candidate at or above the threshold (an alert on a stranger)."""
        return decide(self.hits, threshold).matched

    def rank_one(self) -> bool:
        return bool(self.hits) and self.hits[0].subject_id == self.mate


def run_searches(watchlist: list[Enrolled], searches: list[Search]) -> None:
    """Enrol the watchlist in a fresh embedded index and fill each search's hits."""
    with tempfile.TemporaryDirectory(prefix="lfr-eval-index-") as tmp:
        index = EdgeIndex(Path(tmp))
        try:
            index.create(_DEPLOYMENT, int(watchlist[0].vector.shape[0]))
            entries = [
                Entry(
                    entry_id=str(uuid.uuid4()),
                    vector=e.vector,
                    subject_id=e.subject_id,
                    category="evaluation",
                    source_reference=e.image_key,
                    approved_by="lfr eval",
                    enrolled_at=0.0,
                    image_sha256="",
                )
                for e in watchlist
            ]
            for start in range(0, len(entries), 1000):
                index.upsert(_DEPLOYMENT, entries[start : start + 1000])
            index.optimize(_DEPLOYMENT)
            for search in searches:
                if search.vector is not None:
                    # Exact: the evaluation measures the model. Live, match's approximate search is
                    # re-checked exactly near the threshold, so its decisions there are these.
                    search.hits = index.search(_DEPLOYMENT, search.vector, TOP_K, exact=True)
        finally:
            index.close()


def impostor_scores(
    watchlist: list[Enrolled], searches: list[Search], excluded: set[tuple[str, str]], chunk: int = 512
) -> np.ndarray:
    """Sorted scores of every probe x watchlist pair of different people (float32).

    Pairs of a probe with its own mate are left out, and so are reviewed same-person pairs
    (`excluded`, as (probe key, subject id)).
    """
    matrix = np.stack([e.vector for e in watchlist]).astype(np.float32)
    subjects = np.array([e.subject_id for e in watchlist])
    probes = [s for s in searches if s.vector is not None]
    out = []
    for start in range(0, len(probes), chunk):
        block = probes[start : start + chunk]
        scores = np.stack([p.vector for p in block]).astype(np.float32) @ matrix.T
        keep = np.ones_like(scores, dtype=bool)
        for row, probe in enumerate(block):
            if probe.mate is not None:
                keep[row] &= subjects != probe.mate
            for key, subject in excluded:
                if key == probe.key:
                    keep[row] &= subjects != subject
        out.append(scores[keep])
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.float32)
