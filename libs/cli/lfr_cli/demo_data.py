"""The default demo: built from the shared data set (LFR_DATA_DIR), never stored in the repository.

Watchlist: three people of the LivePortrait clips, each enrolled from one frame of their own clip
(the last second, written to a temporary folder), and 20 LFW identities as filler.
Cameras: one streams the first of those clips (an enrolled person: alerts expected), one the crowd
walking toward a camera (people who are not enrolled: no alert expected).
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2

ENROLLED_CLIPS = ("talking_liveportrait_d0.mp4", "talking_liveportrait_d3.mp4", "talking_liveportrait_d9.mp4")
CROWD_CLIP = "facenet_pytorch_video.mp4"
FILLER_IDENTITIES = 20


class DemoDataMissing(FileNotFoundError):
    pass


def default_videos(data_dir: Path) -> list[str]:
    videos = [data_dir / "video" / ENROLLED_CLIPS[0], data_dir / "video" / CROWD_CLIP]
    missing = [str(v) for v in videos if not v.is_file()]
    if missing:
        raise DemoDataMissing(f"demo videos not found: {', '.join(missing)} (set LFR_DATA_DIR; see docs/data.md)")
    return [str(v) for v in videos]


def subject_id(clip: str) -> str:
    return "liveportrait-" + clip.removeprefix("talking_liveportrait_").removesuffix(".mp4")


def build_watchlist(data_dir: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for clip in ENROLLED_CLIPS:
        path = data_dir / "video" / clip
        frame = _frame_near_end(path)
        folder = dest / subject_id(clip)
        folder.mkdir(exist_ok=True)
        cv2.imwrite(str(folder / "enrolment.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
    labels = data_dir / "lfw" / "labels.csv"
    if not labels.is_file():
        raise DemoDataMissing(f"{labels} not found (set LFR_DATA_DIR; see docs/data.md)")
    with labels.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["path"].endswith("_0001.jpg")][:FILLER_IDENTITIES]
    for row in rows:
        folder = dest / row["identity"]
        folder.mkdir(exist_ok=True)
        (folder / Path(row["path"]).name).write_bytes((data_dir / "lfw" / "images" / row["path"]).read_bytes())
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
