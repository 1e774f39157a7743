"""`python -m lfr_bench --quick` on a fresh checkout: every section of `make bench` runs and gives its
figures, so the bench cannot rot between the times someone measures (issue 27).

It runs as `make bench` would on a fresh clone: in an empty folder (no var/bench, no .cache/embeddings,
no eval-out/), the services, brokers and Redis as processes, the shared data and the models. Every
section runs, none is skipped: the expensive ones (pipeline, replicas, enrolment, brokers) on windows of
a few seconds, and video and fusion on a small `lfr eval` of their own (lfr_bench.evals), since eval-out/
is what `make eval-video` and `make eval-multishot` write and a fresh clone has none. A component that is
missing (a broker, Redis, a model, the data) fails its section, so it fails this test.

Only the figures' presence and kind are asserted (keys there, numbers finite, counts above zero where
something was drained or measured), never their values: the quick run's windows are too short to quote.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lfr_bench.plan import QUICK, SECTIONS

pytestmark = pytest.mark.e2e


def _number(value, *, positive: bool = False) -> bool:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return ok and (value > 0 if positive else value >= 0)


def _numbers(figures: dict, keys: tuple[str, ...], *, positive: bool = False) -> None:
    for key in keys:
        assert _number(figures.get(key), positive=positive), (key, figures.get(key))


def _share(value) -> bool:
    return _number(value) and value <= 1


def _capacity(capacity: dict) -> None:
    _numbers(capacity, ("offered_fps", "ingest_published_fps", "detect_frames_per_s", "window_s"), positive=True)
    _numbers(capacity, ("detect_faces_per_s", "sustained_frames_per_s", "sustained_faces_per_s"), positive=True)
    _numbers(capacity, ("tracks_per_s", "embed_faces_per_s", "match_faces_per_s"))
    assert _share(capacity["share_kept_up"])


def _steady(steady: dict) -> None:
    _numbers(steady, ("cameras_at_5fps", "detect_frames_per_s", "person_passes"), positive=True)
    _numbers(steady, ("capture_to_match_p50_s", "capture_to_match_p95_s", "capture_to_match_p99_s"), positive=True)
    assert isinstance(steady["alerts"], int) and steady["alerts"] >= 0
    # An alert needs the enrolled person's pass to go through within the few seconds measured: none
    # may come, and then its latency is not known.
    for q in (50, 95, 99):
        latency = steady[f"capture_to_alert_p{q}_s"]
        assert latency is None or _number(latency, positive=True), steady


def _stages(f: dict) -> None:
    _numbers(f, ("detect_per_720p_frame_ms", "faces_per_frame", "embed_per_face_ms_batch1"), positive=True)
    _numbers(f, ("embed_per_face_ms_batch4", "cores", "raw_model_faces_per_s"), positive=True)


def _tracks(f: dict) -> None:
    _numbers(f, ("clip_seconds", "faces_per_camera_s", "tracks_per_camera_s", "embeddings_per_camera_s"), positive=True)
    _numbers(f, ("median_embeddings_per_pass", "max_embeddings_per_pass"), positive=True)
    assert isinstance(f["every_pass_decided"], bool)


def _embed(f: dict) -> None:
    # The backlog was drained: faces in it, faces embedded, a rate (issue 27: it once drained 0 faces).
    _numbers(f, ("backlog_faces", "embedded_faces", "stage_faces_per_s", "stage_faces_per_cpu_s"), positive=True)
    _numbers(f, ("stage_cores_used", "model_faces_per_cpu_s", "ratio_per_cpu_s", "batch"), positive=True)


def _video(f: dict) -> None:
    assert _share(f.pop("threshold"))
    assert f, "no shot policy"
    for policy in f.values():
        assert _number(policy["embeddings_per_pass"], positive=True)
        assert all(_share(policy[k]) for k in ("share_of_every_face", "tpir", "fpir")), policy


def _sealing(f: dict) -> None:
    _numbers(f, ("frame_kib", "seal_ms", "unseal_ms", "overhead_bytes"))
    assert f["frame_kib"] > 0 and f["overhead_bytes"] > 0


def _scenes(f: dict) -> None:
    cost = f["cost"]
    _numbers(cost, ("frames", "embedded_shots_per_round", "embed_per_shot_ms", "scene_per_shot_ms"), positive=True)
    _numbers(cost, ("cpu_per_embedded_shot_ms_without", "cpu_per_embedded_shot_ms_with", "ratio"), positive=True)
    _numbers(cost, ("scene_kib", "scene_kib_max", "frame_kib", "crowd_of_30_ms"), positive=True)
    assert _share(cost["share_composed"]) and cost["share_composed"] > 0
    blur = f["blur"]
    assert blur["tracked_faces"] > 0 and blur["blur_min_score"] < blur["identified_min_score"]
    shipped = blur["solid"]
    assert shipped["other_faces"] > 0, shipped  # the check had faces to check
    assert shipped["identified_sface_max"] is None or _number(shipped["identified_sface_max"] + 1)


def _search(f: dict) -> None:
    assert _number(f["real_vectors"], positive=True) and _share(f["threshold"])
    for size in QUICK.search_sizes:
        row = f[str(size)]
        _numbers(row, ("p50_ms", "p99_ms"), positive=True)
        _numbers(row, ("build_s",))
        assert all(_share(row[k]) for k in ("top1_as_exact", "decisions_as_exact")), row
        assert row["top1_as_exact_above_threshold"] is None or _share(row["top1_as_exact_above_threshold"])
        assert _number(f[f"qdrant_client_local_{size}_p50_ms"], positive=True)


def _pipeline(f: dict) -> None:
    for mode in ("before", "after"):
        _capacity(f[mode]["capacity"])
        _steady(f[mode]["steady"])
    _numbers(f["cameras_at_5fps"], ("before", "after", "ratio"), positive=True)
    _numbers(f["efficiency"], ("before", "after"), positive=True)  # stages ran first: the raw rate is known


def _replicas(f: dict) -> None:
    _capacity(f["1"])
    _capacity(f["2"])
    _numbers(f["faces_per_s"], ("1_replica", "2_replicas", "ratio"), positive=True)


def _catchup(f: dict) -> None:
    for size in QUICK.catchup_sizes:
        row = f[str(size)]
        assert row["entries"] == size
        assert len(row["catch_up_s"]) == 2 and all(_number(s, positive=True) for s in row["catch_up_s"]), row
        _numbers(row, ("publish_s", "close_to_every_copy_deleted_s", "catch_up_median_s"))


def _fusion(f: dict) -> None:
    assert _share(f["calibrated_threshold"]) and f["k"] == 3
    for mode in ("single", "mean", "best"):
        assert all(_share(f[mode][k]) for k in ("tpir_at_calibrated", "fpir_at_calibrated")), f[mode]


def _enrolment(f: dict) -> None:
    for run in ("bounded", "unbounded", "bombs"):
        row = f[run]
        _numbers(row, ("photos", "idle_rss_mb", "peak_rss_mb", "health_ms_during_p50"), positive=True)
        _numbers(row, ("enrolled", "seconds", "peak_over_idle_mb", "decoder_workers_peak_rss_mb"))
        assert len(row["outcomes"]) > 0, row
    assert f["bounded"]["enrolled"] == f["bounded"]["photos"]  # ordinary photos, within the limits
    assert isinstance(f["bound_held"], bool)


def _brokers(f: dict) -> None:
    for kind in ("tansu", "noida-db"):
        _numbers(f[kind], ("ready_ms", "first_record_of_a_new_group_s"))
        _numbers(f[kind], ("produce_records_per_s", "produce_mb_per_s"), positive=True)


CHECKS = {
    "stages": _stages,
    "tracks": _tracks,
    "embed": _embed,
    "video": _video,
    "sealing": _sealing,
    "scenes": _scenes,
    "search": _search,
    "pipeline": _pipeline,
    "replicas": _replicas,
    "catchup": _catchup,
    "fusion": _fusion,
    "enrolment": _enrolment,
    "brokers": _brokers,
}


@pytest.mark.timeout(900)
def test_quick_bench_runs_every_section_on_a_fresh_checkout(data_dir, models_dir):
    assert set(CHECKS) == set(SECTIONS), "a section of the bench without its check here, or the reverse"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LFR_KAFKA_", "LFR_REDIS_", "LFR_TEST_"))}
    env.update(LFR_DATA_DIR=str(data_dir), LFR_MODELS_DIR=str(models_dir))
    # An empty folder, as a fresh checkout: nothing of an earlier run, no eval-out/, no embedding cache.
    # A short path: the stacks' supervisor sockets live under it, and a Unix socket's path has at most
    # 107 characters (pytest's tmp_path is too deep). Kept, with the stacks' logs, if the test fails.
    checkout = Path(tempfile.mkdtemp(prefix="lfr-bench-"))
    started = time.monotonic()
    command = [sys.executable, "-m", "lfr_bench", "--quick"]
    result = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, timeout=840)
    output = f"in {checkout}\nstdout:\n{result.stdout[-6000:]}\nstderr:\n{result.stderr[-6000:]}"
    assert result.returncode == 0, output
    figures = json.loads((checkout / QUICK.figures).read_text())
    assert not (checkout / "var/bench/figures.json").exists(), "the quick run wrote the full run's figures"
    assert figures["errors"] == {}, output
    for section, check in CHECKS.items():
        assert isinstance(figures.get(section), dict), (section, output)
        assert "missing" not in figures[section], (section, figures[section])
        check(dict(figures[section]))
        assert f"--- {section}" in result.stdout
    print(f"quick bench: {time.monotonic() - started:.0f} s; per section {figures['wall_s']}")  # noqa: T201
    shutil.rmtree(checkout, ignore_errors=True)
