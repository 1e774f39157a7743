"""`make bench` (enrolment): the deployments service's peak memory while several worst-case photos are
enrolled at once.

The deployments service runs as a process on the local stack. Six 7000x7000 JPEGs (49 Mpixel, under
the 50 Mpixel limit; real LFW faces scaled up) are enrolled over three concurrent streams, twice: with
the limits as configured (each photo decoded in a worker process under an address-space limit,
LFR_DEPLOYMENTS_ENROL_DECODE_MEMORY_MB, and reduced to LFR_DEPLOYMENTS_ENROL_DECODE_MAX_SIDE there;
LFR_DEPLOYMENTS_ENROL_MAX_CONCURRENT workers) and without them (decoded at full size, all at once).
Then the bus probe's bombs (issue 25: a baseline JPEG with one scan per component, progressive JPEGs,
PNGs, a WebP; lfr_testing.bombs), each twice, over four streams, with the defaults: the figure of
record is the service process's peak resident memory over idle (the bound: 300 MB), beside its
decoder workers' (each bounded by its own limit) and each format's outcome. Meanwhile resident
memory is sampled every 20 ms, and the HTTP health endpoint, served by the event loop that also
serves the DeploymentService and its janitor, is timed: a proxy for whether the control plane is
kept waiting.
"""

from __future__ import annotations

import statistics
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import cv2
import psutil

from lfr.v1 import deployments_pb2 as pb
from lfr_contracts.clients import DeploymentClient
from lfr_stack.stack import Stack
from lfr_testing import bombs

SIDE = 7000
# What enrolment may add to the service's process, whatever the photos (docs/deployments.md).
BOUND_MB = 300


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _photos(data_dir: Path, side: int, count: int) -> list[tuple[str, bytes]]:
    photos = []
    for person in sorted((data_dir / "lfw" / "images").iterdir()):
        if len(photos) == count:
            break
        face = cv2.imread(str(person / f"{person.name}_0001.jpg"))
        if face is None:
            continue
        ok, data = cv2.imencode(".jpg", cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC))
        photos.append((person.name, data.tobytes()))
    return photos


def _item(name: str, data: bytes) -> pb.WatchlistImage:
    subject = "".join(c if c.isalnum() else "_" for c in name.split("#")[0])  # a probe's name, as an id
    return pb.WatchlistImage(
        client_ref=name, subject_id=subject, category="wanted", source_reference=f"bench/{name}", approved_by="bench",
        image_source="custody", legal_basis="research_and_testing", image_date=date.today().isoformat(), image=data,
    )  # fmt: skip


def _workers_rss_mb(pid: int) -> float:
    """The resident memory of the service's decoder workers, together."""
    total = 0
    for child in psutil.Process(pid).children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def _run(root: Path, data_dir: Path, photos, env: dict[str, str], streams: int = 3) -> dict:
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
            worker_samples: list[float] = [0.0]
            health_s: list[float] = []
            done = threading.Event()

            def sample():  # once at least, however fast the enrolment
                while True:
                    samples.append(_rss_mb(pid))
                    worker_samples.append(_workers_rss_mb(pid))
                    if done.wait(0.02):
                        break

            def probe():
                while True:
                    health_s.append(_timed(health))
                    if done.wait(0.05):
                        break

            watchers = [threading.Thread(target=sample), threading.Thread(target=probe)]
            for w in watchers:
                w.start()
            started = time.perf_counter()
            with ThreadPoolExecutor(streams) as pool:
                results = list(
                    pool.map(
                        lambda s: list(client.enrol(deployment_id, [_item(n, d) for n, d in s])),
                        [photos[i::streams] for i in range(streams)],
                    )
                )
            elapsed = time.perf_counter() - started
            done.set()
            for w in watchers:
                w.join()
            enrolled = sum(r.status == pb.ENROL_STATUS_ENROLLED for rs in results for r in rs)
            outcomes: dict[str, set[str]] = {}
            for r in (r for rs in results for r in rs):
                outcomes.setdefault(r.client_ref.split("#")[0], set()).add(
                    "enrolled"
                    if r.status == pb.ENROL_STATUS_ENROLLED
                    else pb.RejectionReason.Name(r.reason).removeprefix("REJECTION_REASON_").lower()
                )
    finally:
        stack.stop()
    return {
        "photos": len(photos),
        "enrolled": enrolled,
        "outcomes": {name: "/".join(sorted(o)) for name, o in sorted(outcomes.items())},
        "seconds": round(elapsed, 1),
        "idle_rss_mb": round(idle_mb),
        "peak_rss_mb": round(max(samples)),
        "peak_over_idle_mb": round(max(samples) - idle_mb),
        "decoder_workers_peak_rss_mb": round(max(worker_samples)),
        "health_ms_idle_p50": round(statistics.median(idle_health) * 1e3, 1),
        "health_ms_during_p50": round(statistics.median(health_s) * 1e3, 1),
        "health_ms_during_p95": round(sorted(health_s)[int(len(health_s) * 0.95)] * 1e3, 1),
    }


def _timed(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()
    return time.perf_counter() - started


def run(out: Path, data_dir: Path, side: int = SIDE, count: int = 6) -> dict:
    """`side`, `count`: the photos enrolled with and without the limits (the quick run's are small;
    the bombs are the probe's whatever the run: the bound is what they test)."""
    photos = _photos(data_dir, side, count)
    if len(photos) < count:
        raise FileNotFoundError(f"{count} LFW photos wanted in {data_dir / 'lfw' / 'images'}, {len(photos)} found")
    bounded = _run(out / "enrol-bounded", data_dir, photos, {})
    print(f"  bounded (defaults): {bounded}")
    unbounded = _run(
        out / "enrol-unbounded",
        data_dir,
        photos,
        {
            "LFR_DEPLOYMENTS_ENROL_DECODE_MAX_SIDE": str(side * 2),
            "LFR_DEPLOYMENTS_ENROL_MAX_CONCURRENT": "64",
            "LFR_DEPLOYMENTS_ENROL_DECODE_MEMORY_MB": "100000",
        },
    )
    print(f"  unbounded (full-size decode, no cap): {unbounded}")
    # Four streams of the probe's photos, each twice (the probe: four streams of two): "#1" and "#2"
    # are the same file (the second is refused as a duplicate where the first is enrolled).
    probe = [(f"{name}#{n}", data) for name, data in bombs.all_bombs().items() for n in (1, 2)]
    attacked = _run(out / "enrol-bombs", data_dir, probe, {}, streams=4)
    held = attacked["peak_over_idle_mb"] <= BOUND_MB
    print(f"  the probe's bombs, four streams (defaults): {attacked}")
    print(
        f"  enrolment RSS bound under the probe's bombs: {attacked['peak_over_idle_mb']} MB over idle "
        f"({attacked['idle_rss_mb']} MB), bound {BOUND_MB} MB: {'held' if held else 'BROKEN'}; decoder workers "
        f"{attacked['decoder_workers_peak_rss_mb']} MB at most, each under its own address-space limit"
    )
    for name, outcome in attacked["outcomes"].items():
        print(f"    {name}: {outcome}")
    return {
        "photo": f"{side}x{side} JPEG",
        "bounded": bounded,
        "unbounded": unbounded,
        "bombs": attacked,
        "bound_mb": BOUND_MB,
        "bound_held": held,
    }
