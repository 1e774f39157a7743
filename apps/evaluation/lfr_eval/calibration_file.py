"""The model's calibration file, format 2: each `lfr eval` command rewrites only its own sections.

- `lfr eval --write-calibration`: model_min, model_max, equitability_floor, recall.single_shot;
- `lfr eval --all-pairs --write-calibration`: fmr (the false match curves and their fitted tails);
- `lfr eval --video --write-calibration`: per_pass, recall.per_pass, recall.per_pass_cross_occasion;

each with its provenance under basis.<command>. The file is read, the command's sections replaced
(recall one key at a time, since two commands share it), and written back whole, so that one
command never erases what another measured. The reader is lfr_faces.calibration.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

FORMAT = 2
# In the order the file lists them; anything else already there is kept after them.
_ORDER = ("model_id", "format", "model_min", "model_max", "equitability_floor", "fmr", "per_pass", "recall", "basis")
# Sections shared by several commands: updated key by key, never replaced whole.
_SHARED = ("recall", "basis")
# Format 1's keys: the operating point is no longer the calibration's to choose (issue 24).
_LEGACY = ("default_threshold", "threshold_floor")
_BASIS_KEYS = ("eval", "all_pairs", "video")


def read(path: Path) -> dict:
    """The file's content, migrated to format 2 (format 1's keys dropped); {} when there is none."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        data = {k: v for k, v in data.items() if k not in _LEGACY}
        # Format 1's basis was the single-shot run's flat provenance (its target and FMR curve included):
        # superseded by the sections above, and by basis.eval once `lfr eval` writes again.
        data["basis"] = {k: v for k, v in data.get("basis", {}).items() if k in _BASIS_KEYS}
        data["format"] = FORMAT
    return data


def update(path: Path, model_id: str, sections: dict, basis_key: str, basis: dict) -> dict:
    """Replace `sections` (top-level keys; those in _SHARED merged key by key) and basis[basis_key]."""
    data = read(path)
    data["model_id"] = model_id
    data["format"] = FORMAT
    for key, value in sections.items():
        if key in _SHARED:
            data[key] = {**data.get(key, {}), **value}
        else:
            data[key] = value
    data["basis"] = {**data.get("basis", {}), basis_key: basis}
    ordered = {k: data[k] for k in _ORDER if k in data}
    ordered.update({k: v for k, v in data.items() if k not in ordered})
    _write_atomically(path, dumps(ordered) + "\n")
    return ordered


def dumps(value, indent: str = "") -> str:
    """JSON, indented, with each list of numbers on one line: a curve's 121 points stay 121 lines."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {dumps(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
        return "[\n" + ",\n".join(inner + dumps(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value)


def _write_atomically(path: Path, text: str) -> None:
    """A reader (a service starting) sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def lowest_allowed(model_id: str) -> float:
    """The lowest threshold a deployment of the model can run at, max(model_min, equitability_floor):
    where `lfr eval`'s side reports (multi-shot, gallery, video) read their tables, now that the
    operating point is derived per deployment (lfr_faces.calibration) rather than fixed per model."""
    from lfr_faces.calibration import calibration_path

    data = read(calibration_path(model_id))
    bounds = [data[k] for k in ("model_min", "equitability_floor") if data.get(k) is not None]
    if not bounds:
        raise ValueError(
            f"the calibration of {model_id} has no model_min: run `make eval EVAL_ARGS=--write-calibration`"
        )
    return max(bounds)
