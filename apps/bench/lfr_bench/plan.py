"""How much each section of `make bench` measures: the full run, or the quick one.

FULL gives the figures of docs/performance.md (var/bench/figures.json). QUICK runs every section's
code on small sizes and windows of a few seconds, so that `make test` shows the bench still runs
(bench/tests/test_quick.py); its figures are written apart (var/bench/quick/figures.json) and are
not to be quoted: they say that a section works, not how fast.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from lfr_platform.settings import PlatformSettings, ToolSettings

DATA = ToolSettings().data_dir
MODELS = Path(PlatformSettings().models_dir)

# Every section, in the order they run: the bench's one list (`--only` and the quick test check it).
SECTIONS = (
    "stages",
    "tracks",
    "embed",
    "video",
    "sealing",
    "scenes",
    "search",
    "pipeline",
    "replicas",
    "catchup",
    "fusion",
    "enrolment",
    "brokers",
)


@dataclass(frozen=True)
class Plan:
    quick: bool
    out: Path  # the run's folder: its figures.json, its clips, its stacks
    window_s: float  # pipeline, replicas: each measurement window
    warm_up_s: float  # pipeline, replicas: models loaded, groups joined, queues filled before a window
    capacity_cameras: int  # pipeline, replicas: cameras offered at 5 fps, more than the machine can take
    stage_frames: int  # stages: frames of the crowd clip detected (each twice)
    stage_faces: int  # stages: faces embedded at batch 1 and 4
    embed_cameras: int  # embed: cameras whose faces make the backlog
    embed_seconds: float  # embed: seconds of video they stream into it
    embed_model_faces: int  # embed: crops through the model alone, three times
    sealing_rounds: int
    search_sizes: tuple[int, ...]  # search: watchlist entries
    search_queries: int
    search_photos: int  # search: real photos embedded for the watchlist and probes (0: every one)
    catchup_sizes: tuple[int, ...]
    enrol_side: int  # enrolment: the photos' side in pixels
    enrol_photos: int
    broker_records: int
    broker_runs: int

    @property
    def figures(self) -> Path:
        return self.out / "figures.json"

    def with_window(self, seconds: float | None) -> Plan:
        return self if seconds is None else replace(self, window_s=seconds)


FULL = Plan(
    quick=False,
    out=Path("var/bench"),
    window_s=40.0,
    warm_up_s=15.0,
    capacity_cameras=16,
    stage_frames=0,  # every frame of the clip
    stage_faces=160,
    embed_cameras=4,
    embed_seconds=30.0,
    embed_model_faces=192,
    sealing_rounds=300,
    search_sizes=(10_000, 200_000),
    search_queries=1000,
    search_photos=0,
    catchup_sizes=(10_000, 200_000),
    enrol_side=7000,  # 49 Mpixel, just under the 50 Mpixel limit
    enrol_photos=6,
    broker_records=600,
    broker_runs=3,
)

# A few seconds per window, a few hundred of everything: each section's code path, in minutes on 2 cores.
QUICK = Plan(
    quick=True,
    out=Path("var/bench/quick"),
    window_s=3.0,
    warm_up_s=3.0,
    capacity_cameras=2,
    stage_frames=10,
    stage_faces=8,
    embed_cameras=1,
    embed_seconds=2.0,
    embed_model_faces=16,
    sealing_rounds=20,
    search_sizes=(2_000,),
    search_queries=100,
    search_photos=400,
    catchup_sizes=(500,),
    enrol_side=1500,
    enrol_photos=2,
    broker_records=50,
    broker_runs=1,
)
