"""`make bench` (enrolment): the deployments service's peak memory while several worst-case photos are
enrolled at once.

The deployments service runs as a process on the local stack. Six 7000x7000 JPEGs (49 Mpixel, under
the 50 Mpixel limit; real LFW faces scaled up) are enrolled over three concurrent streams, twice: with
the limits as configured (photos reduced while decoded, LFR_DEPLOYMENTS_ENROL_MAX_CONCURRENT at a
time, each reserving its decoding's memory from LFR_DEPLOYMENTS_ENROL_MEMORY_MB) and without them
(decoded at full size, all at once), as before. Then the bus probe's bombs (issue 16): 7000x7000
baseline, progressive 4:2:0 and progressive 4:4:4 JPEGs and a PNG, over three streams, with the
limits and without the memory budget. Meanwhile its resident memory is sampled every 20 ms, and its
HTTP health endpoint, served by the event loop that also serves the DeploymentService and its janitor,
is timed: a proxy for whether the control plane is kept waiting.
"""

from __future__ import annotations

import io
import statistics
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import cv2
from PIL import Image

from lfr.v1 import deployments_pb2 as pb
from lfr_contracts.clients import DeploymentClient
from lfr_stack.stack import Stack

SIDE = 7000


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _photos(data_dir: Path) -> list[tuple[str, bytes]]:
    photos = []
    for person in sorted((data_dir / "lfw" / "images").iterdir()):
        if len(photos) == 6:
            break
        face = cv2.imread(str(person / f"{person.name}_0001.jpg"))
        if face is None:
            continue
        ok, data = cv2.imencode(".jpg", cv2.resize(face, (SIDE, SIDE), interpolation=cv2.INTER_CUBIC))
        photos.append((person.name, data.tobytes()))
    return photos


def _bombs(data_dir: Path) -> list[tuple[str, bytes]]:
    """The probe's photos: one face at 7000x7000 as a baseline, a progressive (4:2:0), a progressive
    4:4:4 JPEG and a PNG."""
    face = cv2.imread(str(data_dir / "lfw" / "images" / "Colin_Powell" / "Colin_Powell_0001.jpg"))
    big = cv2.resize(face, (SIDE, SIDE), interpolation=cv2.INTER_LINEAR)
    buffer = io.BytesIO()
    Image.fromarray(big[:, :, ::-1]).save(buffer, "JPEG", quality=90, progressive=True, subsampling=0)
    return [
        ("baseline", cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()),
        (
            "progressive",
            cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
        ),
        ("progressive-444", buffer.getvalue()),
        ("png", cv2.imencode(".png", big, [cv2.IMWRITE_PNG_COMPRESSION, 3])[1].tobytes()),
    ]


def _item(name: str, data: bytes) -> pb.WatchlistImage:
    return pb.WatchlistImage(
        client_ref=name, subject_id=name, category="wanted", source_reference=f"bench/{name}", approved_by="bench",
        image_source="custody", legal_basis="research_and_testing", image_date=date.today().isoformat(), image=data,
    )  # fmt: skip


def _run(root: Path, data_dir: Path, photos, env: dict[str, str]) -> dict:
    stack = Stack(root, extra_env=env)
    try:
        state = stack.start(services=("deployments",))
        pid = stack.pid("deployments")
        health = f"http://127.0.0.1:{stack.http_port('deployments')}/healthz"
        with DeploymentClient(state.grpc_address, state.tokens["manager"], timeout_s=600) as client:
            request = pb.CreateDeploymentRequest(
                name="bench", purpose="bench", authorising_officer="bench", location="bench", where="intelligence_led"
            )
            request.planned_end.FromSeconds(int(time.time() + 3600))
            deployment_id = client.create(request).deployment_id
            warm = cv2.imencode(".jpg", cv2.imread(str(data_dir / "lfw/images/Colin_Powell/Colin_Powell_0002.jpg")))
            list(client.enrol(deployment_id, [_item("warm-up", warm[1].tobytes())]))
            idle_mb = _rss_mb(pid)
            idle_health = [_timed(health) for _ in range(50)]

            samples: list[float] = []
            health_s: list[float] = []
            done = threading.Event()

            def sample():
                while not done.is_set():
                    samples.append(_rss_mb(pid))
                    time.sleep(0.02)

            def probe():
                while not done.is_set():
                    health_s.append(_timed(health))
                    time.sleep(0.05)

            watchers = [threading.Thread(target=sample), threading.Thread(target=probe)]
            for w in watchers:
                w.start()
            started = time.perf_counter()
            streams = [photos[i::3] for i in range(3)]
            with ThreadPoolExecutor(3) as pool:
                results = list(
                    pool.map(lambda s: list(client.enrol(deployment_id, [_item(n, d) for n, d in s])), streams)
                )
            elapsed = time.perf_counter() - started
            done.set()
            for w in watchers:
                w.join()
            enrolled = sum(r.status == pb.ENROL_STATUS_ENROLLED for rs in results for r in rs)
            refused = sorted(
                f"{r.client_ref}: {pb.RejectionReason.Name(r.reason).removeprefix('REJECTION_REASON_').lower()}"
                for rs in results
                for r in rs
                if r.status != pb.ENROL_STATUS_ENROLLED
            )
    finally:
        stack.stop()
    return {
        "photos": len(photos),
        "enrolled": enrolled,
        "refused": refused,
        "seconds": round(elapsed, 1),
        "idle_rss_mb": round(idle_mb),
        "peak_rss_mb": round(max(samples)),
        "peak_over_idle_mb": round(max(samples) - idle_mb),
        "health_ms_idle_p50": round(statistics.median(idle_health) * 1e3, 1),
        "health_ms_during_p50": round(statistics.median(health_s) * 1e3, 1),
        "health_ms_during_p95": round(sorted(health_s)[int(len(health_s) * 0.95)] * 1e3, 1),
    }


def _timed(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()
    return time.perf_counter() - started


def run(out: Path, data_dir: Path) -> dict:
    photos = _photos(data_dir)
    bounded = _run(out / "enrol-bounded", data_dir, photos, {})
    print(f"  bounded (defaults): {bounded}")
    unbounded = _run(
        out / "enrol-unbounded",
        data_dir,
        photos,
        {
            "LFR_DEPLOYMENTS_ENROL_DECODE_MAX_SIDE": str(SIDE * 2),
            "LFR_DEPLOYMENTS_ENROL_MAX_CONCURRENT": "64",
            "LFR_DEPLOYMENTS_ENROL_MEMORY_MB": "100000",
        },
    )
    print(f"  unbounded (full-size decode, no cap): {unbounded}")
    bombs = _bombs(data_dir)
    probe = _run(out / "enrol-bombs", data_dir, bombs, {})
    print(f"  the probe's bombs, bounded (defaults): {probe}")
    probe_unbounded = _run(
        out / "enrol-bombs-unbounded", data_dir, bombs, {"LFR_DEPLOYMENTS_ENROL_MEMORY_MB": "100000"}
    )
    print(f"  the probe's bombs, no memory budget: {probe_unbounded}")
    return {
        "photo": f"{SIDE}x{SIDE} JPEG",
        "bounded": bounded,
        "unbounded": unbounded,
        "bombs_bounded": probe,
        "bombs_no_budget": probe_unbounded,
    }
