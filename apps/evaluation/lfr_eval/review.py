"""The review sheet of the highest-scoring impostor pairs, and reviewed exclusions.

Public face sets overlap: some "non-mated" photos are of enrolled people (UTKFace holds famous
people who are also in LFW). A person compares each top non-mated probe with the watchlist image
it matched, side by side, and lists confirmed same-person pairs in an exclusions file; results are
then reported both as labelled and as reviewed, and the exclusions are listed in the report.

The sheet shows real faces: it stays in the output folder and is never committed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lfr_eval.experiment import Enrolled, Search
from lfr_faces import alignment, images
from lfr_watchlist import Hit

_TILE = 112
_TEXT = 420


@dataclass(frozen=True)
class Pair:
    """An impostor comparison as labelled: a probe and a watchlist subject it is not labelled as."""

    probe: Search
    hit: Hit

    @property
    def kind(self) -> str:
        return "non-mated" if self.probe.mate is None else f"mated probe of {self.probe.mate}"


def top_pairs(searches: list[Search], n: int) -> list[Pair]:
    """The highest-scoring impostor pairs among every probe's top candidates: the ones most likely
    to be labelling errors (the same person under two names, or in two data sets)."""
    pairs = [Pair(s, h) for s in searches if s.acquired for h in s.hits if h.subject_id != s.mate]
    return sorted(pairs, key=lambda p: p.hit.score, reverse=True)[:n]


def write_csv(path: Path, top: list[Pair], enrolled_by_subject: dict[str, Enrolled]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rank", "probe", "probe_kind", "subject_id", "score", "watchlist_image", "same_person"])
        for rank, pair in enumerate(top, start=1):
            writer.writerow(
                [
                    rank,
                    pair.probe.key,
                    pair.kind,
                    pair.hit.subject_id,
                    f"{pair.hit.score:.4f}",
                    enrolled_by_subject[pair.hit.subject_id].image_key,
                    "",
                ]
            )


def load_exclusions(paths: Path | list[Path] | None) -> set[tuple[str, str]]:
    """(probe key, subject id) pairs a reviewer confirmed as the same person, from one file or several.

    Accepts the review CSV itself with `same_person` filled in (yes/y/1/true; any other ruling, e.g.
    no or unsure, keeps the pair an impostor), or any CSV with `probe` and `subject_id` columns (every
    row then counts).
    """
    if paths is None:
        return set()
    out = set()
    for path in [paths] if isinstance(paths, Path) else paths:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and ("probe" not in rows[0] or "subject_id" not in rows[0]):
            raise ValueError(f"{path}: an exclusions file needs the columns probe and subject_id")
        for row in rows:
            flag = (row.get("same_person") or "yes").strip().lower()
            if flag in ("yes", "y", "1", "true"):
                out.add((row["probe"], row["subject_id"]))
    return out


def write_sheet(path: Path, top: list[Pair], enrolled_by_subject: dict[str, Enrolled], detector) -> None:
    rows = []
    for rank, pair in enumerate(top, start=1):
        lines = (
            f"#{rank}  score {pair.hit.score:.3f}  ({pair.kind})",
            f"probe: {pair.probe.key}",
            f"watchlist: {pair.hit.subject_id}",
        )
        probe = aligned(pair.probe.path, detector)
        rows.append(sheet_row(probe, aligned(enrolled_by_subject[pair.hit.subject_id].path, detector), lines))
    if rows:
        cv2.imwrite(str(path), np.vstack(rows))


def sheet_row(probe: np.ndarray, mate: np.ndarray, lines: tuple[str, ...]) -> np.ndarray:
    """One row of a review sheet: the two aligned faces side by side, then up to three lines of text."""
    text = np.full((_TILE, _TEXT, 3), 255, np.uint8)
    for line, content in enumerate(lines[:3]):
        cv2.putText(text, content[:64], (6, 24 + 30 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.hstack([probe, mate, text])


def aligned(path: Path, detector) -> np.ndarray:
    """The face as the pipeline aligns it (the face nearest the centre), or a grey tile."""
    try:
        image = images.decode(path.read_bytes(), max_bytes=64 * 1024 * 1024, max_pixels=100_000_000)
    except (OSError, images.ImageRejected):
        return np.full((_TILE, _TILE, 3), 128, np.uint8)
    return aligned_image(image, detector)


def aligned_image(image: np.ndarray, detector) -> np.ndarray:
    """The face nearest the image's centre, aligned as the pipeline aligns it (or the image, resized)."""
    faces = detector.detect(image, 0.5)
    if not faces:
        return cv2.resize(image, (_TILE, _TILE))
    cy, cx = image.shape[0] / 2, image.shape[1] / 2
    face = min(faces, key=lambda f: (f.box[0] + f.box[2] / 2 - cx) ** 2 + (f.box[1] + f.box[3] / 2 - cy) ** 2)
    return alignment.align(image, face.landmarks)
