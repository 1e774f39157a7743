"""Evaluation datasets on disk, and what is wrong with them (counted, never silently dropped).

Mated dataset: images/<identity>/<image files>, optional labels.csv with a `path` column (relative
to images/) or an `identity` column, plus any demographic columns.
Non-mated set: images/<image files>, optional labels.csv keyed by `file`.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pgm", ".ppm", ".tif", ".tiff"}
# Columns that identify rather than describe; and columns with too many values to be groups.
_ID_COLUMNS = {"path", "file", "identity", "n_images_identity", "n_images", "width", "height", "age"}
_MAX_GROUP_VALUES = 12


@dataclass(frozen=True)
class Image:
    path: Path
    key: str  # relative name used in reports: "<set>:<relative path>"
    identity: str | None  # None for non-mated sets
    labels: dict[str, str]


@dataclass
class Dataset:
    name: str
    images: list[Image]
    group_columns: list[str]
    problems: Counter[str] = field(default_factory=Counter)
    problem_examples: dict[str, list[str]] = field(default_factory=dict)

    def problem(self, kind: str, example: str) -> None:
        self.problems[kind] += 1
        examples = self.problem_examples.setdefault(kind, [])
        if len(examples) < 5:
            examples.append(example)

    def by_identity(self) -> dict[str, list[Image]]:
        out: dict[str, list[Image]] = {}
        for image in self.images:
            out.setdefault(image.identity or "", []).append(image)
        return out


def _read_labels(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _group_columns(rows: list[dict[str, str]]) -> list[str]:
    if not rows:
        return []
    columns: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for column in rows[0]:
        if column in _ID_COLUMNS:
            continue
        values = {r[column] for r in rows if r.get(column)}
        signature = tuple(r.get(column, "") for r in rows)
        # A column equal to an earlier one adds a test, not information.
        if 2 <= len(values) <= _MAX_GROUP_VALUES and signature not in seen:
            columns.append(column)
            seen.add(signature)
    return columns


def load_mated(root: Path) -> Dataset:
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir} not found: a dataset is images/<identity>/<files> (+ labels.csv)")
    rows = _read_labels(root / "labels.csv")
    by_path = {r["path"]: r for r in rows if r.get("path")}
    by_identity = {r["identity"]: r for r in rows if r.get("identity") and not r.get("path")}
    dataset = Dataset(root.name, [], _group_columns(rows))
    seen = set()
    for folder in sorted(p for p in images_dir.iterdir() if p.is_dir()):
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            relative = f"{folder.name}/{path.name}"
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                dataset.problem("not_an_image_file", relative)
                continue
            seen.add(relative)
            row = by_path.get(relative) or by_identity.get(folder.name) or {}
            if rows and not row:
                dataset.problem("image_without_labels", relative)
            labels = {c: row.get(c, "") for c in dataset.group_columns}
            dataset.images.append(Image(path, f"{root.name}:{relative}", folder.name, labels))
    for relative in by_path:
        if relative not in seen:
            dataset.problem("label_names_missing_file", relative)
    return dataset


def load_nonmated(root: Path) -> Dataset:
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir} not found: a non-mated set is images/<files> (+ labels.csv)")
    rows = _read_labels(root / "labels.csv")
    by_file = {r["file"]: r for r in rows if r.get("file")}
    dataset = Dataset(root.name, [], _group_columns(rows))
    seen = set()
    for path in sorted(p for p in images_dir.iterdir() if p.is_file()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            dataset.problem("not_an_image_file", path.name)
            continue
        seen.add(path.name)
        row = by_file.get(path.name, {})
        if rows and not row:
            dataset.problem("image_without_labels", path.name)
        labels = {c: row.get(c, "") for c in dataset.group_columns}
        dataset.images.append(Image(path, f"{root.name}:{path.name}", None, labels))
    for name in by_file:
        if name not in seen:
            dataset.problem("label_names_missing_file", name)
    return dataset
