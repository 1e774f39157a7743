"""A watchlist folder: one sub-folder per subject (its name is the subject id), photos inside.

Provenance comes from `manifest.csv` in the folder when present (columns: file, and any of
category, source_reference, approved_by), else from the command's options. Every image must end
up with all three: the source of every watchlist image is recorded.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lfr.v1 import deployments_pb2 as pb

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pgm", ".ppm", ".tif", ".tiff"}


class WatchlistFolderError(ValueError):
    pass


@dataclass(frozen=True)
class WatchlistItem:
    path: Path
    relative: str
    subject_id: str
    category: str
    source_reference: str
    approved_by: str

    def to_message(self) -> pb.WatchlistImage:
        return pb.WatchlistImage(
            client_ref=self.relative,
            subject_id=self.subject_id,
            category=self.category,
            source_reference=self.source_reference,
            approved_by=self.approved_by,
            image=self.path.read_bytes(),
        )


def scan(
    folder: Path, *, category: str | None, approved_by: str | None, source_prefix: str = "file:"
) -> list[WatchlistItem]:
    folder = Path(folder)
    if not folder.is_dir():
        raise WatchlistFolderError(f"watchlist folder {folder} does not exist")
    manifest = _manifest(folder / "manifest.csv")
    items = []
    for subject in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(p for p in subject.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            relative = str(path.relative_to(folder))
            row = manifest.get(relative, {})
            item = WatchlistItem(
                path=path,
                relative=relative,
                subject_id=subject.name,
                category=row.get("category") or category or "",
                source_reference=row.get("source_reference") or f"{source_prefix}{relative}",
                approved_by=row.get("approved_by") or approved_by or "",
            )
            missing = [f for f in ("category", "approved_by") if not getattr(item, f)]
            if missing:
                raise WatchlistFolderError(
                    f"{relative}: no {' or '.join(missing)} (give --{missing[0].replace('_', '-')} or a manifest.csv)"
                )
            items.append(item)
    if not items:
        raise WatchlistFolderError(
            f"watchlist folder {folder} is empty: it needs one sub-folder per subject with at least one photo"
        )
    return items


def _manifest(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f) if row.get("file")}


def iter_messages(items: list[WatchlistItem]) -> Iterator[pb.WatchlistImage]:
    for item in items:
        yield item.to_message()
