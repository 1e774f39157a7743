"""The default demo: built from the shared data set (LFR_DATA_DIR), never stored in the repository.

Watchlist: three people of the LivePortrait clips, each enrolled from one frame of their own clip
(the last second, written to a temporary folder), and 20 LFW identities as filler.
Cameras: one streams the first of those clips (an enrolled person: alerts expected), one the crowd
walking toward a camera (people who are not enrolled: no alert expected).
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import cv2

ENROLLED_CLIPS = ("talking_liveportrait_d0.mp4", "talking_liveportrait_d3.mp4", "talking_liveportrait_d9.mp4")
CROWD_CLIP = "facenet_pytorch_video.mp4"
FILLER_IDENTITIES = 20
# The demo's provenance, as its manifest.csv states it (the shipped policy's codes): public research
# data, enrolled for a demonstration. LivePortrait's driving clips were published with it in July
# 2024; LFW's photos are news photographs of 2002-2003, older than the policy allows, so each row
# says why it is used anyway (the age override, audited).
MANIFEST_COLUMNS = (
    "file",
    "category",
    "image_source",
    "legal_basis",
    "image_date",
    "source_reference",
    "age_override_reason",
)
LIVEPORTRAIT_DATE = "2024-07-04"
LFW_DATE = "2003-12-31"
LFW_OVERRIDE = "LFW, a public research set of news photographs of 2002-2003: a demonstration, never a live operation"


class DemoDataMissing(FileNotFoundError):
    pass


# What the demo records for a watchlist folder of your own without a manifest (or a row's empty
# fields): public research data, approved for the demonstration, each photo dated by its file.
PROVENANCE = {
    "category": "wanted",
    "image_source": "open_source",
    "legal_basis": "research_and_testing",
    "approved_by": "lfr demo",
}


def file_date(path: Path) -> str:
    """The date of a photo's file (its last modification): the demo's stand-in for when it was taken."""
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).date().isoformat()


def default_videos(data_dir: Path) -> list[str]:
    videos = [data_dir / "video" / ENROLLED_CLIPS[0], data_dir / "video" / CROWD_CLIP]
    missing = [str(v) for v in videos if not v.is_file()]
    if missing:
        raise DemoDataMissing(f"demo videos not found: {', '.join(missing)} (set LFR_DATA_DIR; see docs/data.md)")
    return [str(v) for v in videos]


def subject_id(clip: str) -> str:
    return "liveportrait-" + clip.removeprefix("talking_liveportrait_").removesuffix(".mp4")


def build_watchlist(data_dir: Path, dest: Path) -> Path:
    """The demo's watchlist folder, with its manifest.csv (one row per photo)."""
    dest.mkdir(parents=True, exist_ok=True)
    manifest = []
    demo = {k: PROVENANCE[k] for k in ("category", "image_source", "legal_basis")}
    for clip in ENROLLED_CLIPS:
        path = data_dir / "video" / clip
        frame = _frame_near_end(path)
        folder = dest / subject_id(clip)
        folder.mkdir(exist_ok=True)
        cv2.imwrite(str(folder / "enrolment.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        manifest.append(
            {
                "file": f"{folder.name}/enrolment.jpg",
                **demo,
                "image_date": LIVEPORTRAIT_DATE,
                "source_reference": f"LivePortrait driving clip {clip}, its last second",
            }
        )
    labels = data_dir / "lfw" / "labels.csv"
    if not labels.is_file():
        raise DemoDataMissing(f"{labels} not found (set LFR_DATA_DIR; see docs/data.md)")
    with labels.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["path"].endswith("_0001.jpg")][:FILLER_IDENTITIES]
    for row in rows:
        folder = dest / row["identity"]
        folder.mkdir(exist_ok=True)
        (folder / Path(row["path"]).name).write_bytes((data_dir / "lfw" / "images" / row["path"]).read_bytes())
        manifest.append(
            {
                "file": f"{folder.name}/{Path(row['path']).name}",
                **demo,
                "image_date": LFW_DATE,
                "source_reference": f"LFW {row['path']}",
                "age_override_reason": LFW_OVERRIDE,
            }
        )
    with (dest / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(manifest)
    return dest


def _frame_near_end(path: Path):
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DemoDataMissing(f"cannot read {path} (set LFR_DATA_DIR; see docs/data.md)")
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = capture.get(cv2.CAP_PROP_FPS) or 25
        capture.set(cv2.CAP_PROP_POS_FRAMES, max(0, frames - int(fps)))
        ok, frame = capture.read()
        if not ok:
            raise DemoDataMissing(f"cannot read a frame of {path}")
        return frame
    finally:
        capture.release()
