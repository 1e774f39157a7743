"""A watchlist folder: one sub-folder per subject (its name is the subject id), photos inside.

Provenance comes from a manifest beside the photos, `manifest.csv` or `manifest.json` (a list of
objects), one row per photo: `file` (its path in the folder, e.g. `S1/custody.jpg`), and any of
`subject_id` (the folder's name), `category`, `image_source`, `legal_basis`, `image_date`
(YYYY-MM-DD), `minor`, `source_reference`, `approved_by`, `second_approver`, `age_override_reason`.
Fields a row leaves empty come from the command's options, the same for every photo. With a
manifest, every photo has a row and every row a photo. The deployments service checks the values
against the policy's closed lists (docs/deployments.md#provenance-and-review).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

from lfr.v1 import deployments_pb2 as pb

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pgm", ".ppm", ".tif", ".tiff"}
MANIFESTS = ("manifest.csv", "manifest.json")
# What every photo needs, from its row or the options (the service checks the values).
REQUIRED = ("category", "image_source", "legal_basis", "image_date", "approved_by")
_TRUE, _FALSE = {"true", "yes", "1", "y"}, {"", "false", "no", "0", "n"}


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
    image_source: str = ""
    legal_basis: str = ""
    image_date: str = ""
    minor: bool = False
    second_approver: str = ""
    age_override_reason: str = ""

    def to_message(self) -> pb.WatchlistImage:
        provenance = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("path", "relative")}
        return pb.WatchlistImage(client_ref=self.relative, image=self.path.read_bytes(), **provenance)


def scan(
    folder: Path,
    *,
    source_prefix: str = "file:",
    dated: Callable[[Path], str] | None = None,
    **defaults: str | None,
) -> list[WatchlistItem]:
    """The folder's photos with their provenance; `defaults` (category, image_source, legal_basis,
    image_date, approved_by, ...) fill what a manifest row leaves empty, or every photo without one,
    and `dated(path)` a photo's image_date if still empty."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WatchlistFolderError(f"watchlist folder {folder} does not exist")
    manifest = _manifest(folder)
    items = []
    for subject in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(p for p in subject.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            relative = path.relative_to(folder).as_posix()
            if manifest is not None and relative not in manifest:
                raise WatchlistFolderError(
                    f"{relative} has no row in the manifest: every photo needs its provenance (or remove the photo)"
                )
            row = manifest.pop(relative, {}) if manifest is not None else {}
            if row.get("subject_id") and row["subject_id"] != subject.name:
                raise WatchlistFolderError(
                    f"{relative}: the manifest says subject {row['subject_id']!r}, the folder {subject.name!r}"
                )
            value = {k: str(row.get(k) or defaults.get(k) or "").strip() for k in _TEXT_FIELDS}
            if not value["image_date"] and dated is not None:
                value["image_date"] = dated(path)
            missing = [f for f in REQUIRED if not value[f]]
            if missing:
                option = "--" + missing[0].replace("_", "-")
                raise WatchlistFolderError(
                    f"{relative}: no {', '.join(missing)} (a column of the manifest, or {option})"
                )
            items.append(
                WatchlistItem(
                    path=path,
                    relative=relative,
                    subject_id=subject.name,
                    **{**value, "source_reference": value["source_reference"] or f"{source_prefix}{relative}"},
                    minor=_flag(row.get("minor"), relative),
                )
            )
    if manifest:
        raise WatchlistFolderError(f"the manifest has rows for photos that are not in {folder}: {', '.join(manifest)}")
    if not items:
        raise WatchlistFolderError(
            f"watchlist folder {folder} is empty: it needs one sub-folder per subject with at least one photo"
        )
    return items


_TEXT_FIELDS = (
    "category",
    "image_source",
    "legal_basis",
    "image_date",
    "source_reference",
    "approved_by",
    "second_approver",
    "age_override_reason",
)


def _flag(value, relative: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise WatchlistFolderError(f"{relative}: minor must be true or false (it is {value!r})")


def _manifest(folder: Path) -> dict[str, dict] | None:
    present = [folder / name for name in MANIFESTS if (folder / name).is_file()]
    if not present:
        return None
    if len(present) > 1:
        raise WatchlistFolderError(f"{folder} has both manifest.csv and manifest.json: keep one")
    path = present[0]
    try:
        if path.suffix == ".csv":
            with path.open(newline="") as f:
                rows = list(csv.DictReader(f))
        else:
            rows = json.loads(path.read_text())
    except (OSError, ValueError, csv.Error) as exc:
        raise WatchlistFolderError(f"{path} cannot be read: {exc}") from exc
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise WatchlistFolderError(f"{path} must hold one row (object) per photo")
    manifest: dict[str, dict] = {}
    for number, row in enumerate(rows, start=1):
        name = str(row.get("file") or "").strip()
        if not name:
            raise WatchlistFolderError(f"{path}, row {number}: no file")
        if name in manifest:
            raise WatchlistFolderError(f"{path}: {name} has two rows")
        manifest[name] = row
    return manifest


def iter_messages(items: list[WatchlistItem]) -> Iterator[pb.WatchlistImage]:
    for item in items:
        yield item.to_message()
