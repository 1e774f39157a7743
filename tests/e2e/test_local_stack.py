"""The local stack as a user drives it, through the `lfr` command in processes: `lfr stack up`, a
deployment with a camera, enrolment, `lfr stack up --video ... --deployment ...`, `lfr alert list`,
`lfr alert adjudicate`, `lfr deployment close`, `lfr deployment report --json`, `lfr stack down`; and
the stack's own reliability: supervised (a killed process comes back by itself, the deployment kept),
never two stacks at once, and `down` leaves no process whatever happened to the state file."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest

from lfr_cli import demo_data, transparency
from lfr_contracts import ALERTS_RAISED, FACES_DETECTED, FACES_EMBEDDED, FRAMES_CAPTURED, MATCHES_FOUND
from lfr_stack.processes import marked_processes, pid_alive
from lfr_stack.state import StackState
from lfr_stack.supervisor import Supervisor
from lfr_stack.wiring import default_replicas, replica_names, service_of
from lfr_testing.kafka import clear_images
from lfr_testing.stack import eventually

pytestmark = pytest.mark.e2e


class Lfr:
    def __init__(self, root: Path, data_dir: Path, models_dir: Path) -> None:
        self.root = root
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("LFR_KAFKA_", "LFR_REDIS_", "KAFKA_", "REDIS_"))
        }
        self.env.update(LFR_DATA_DIR=str(data_dir), LFR_MODELS_DIR=str(models_dir), LFR_CLI_STACK_DIR=str(root))

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lfr_cli.main", *args], capture_output=True, text=True, env=self.env, timeout=timeout
        )

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.returncode == 0, f"lfr {' '.join(args)}: {result.stderr[-2000:]}"
        return result.stdout

    def create(self, name: str) -> str:
        """A deployment of two hours on van-1/cam-1, made with `lfr deployment create`; its id."""
        return self.ok(
            "deployment", "create", "--name", name, "--purpose", "wanted persons", "--officer", "Supt. A",
            "--hours", "2", "--camera", "van-1/cam-1", "--location", "Station Road", "--where", "crime_hotspot",
        ).strip()  # fmt: skip

    def enrol(self, deployment_id: str, watchlist: Path) -> None:
        self.ok("watchlist", "enrol", deployment_id, str(watchlist), "--category", "wanted", "--approved-by", "Insp. B")

    def state(self) -> StackState:
        state = StackState.load(self.root)
        assert state is not None
        return state

    def pids(self) -> dict[str, int | None]:
        """Each process of the stack and its pid now (None between a death and its restart)."""
        supervisor = Supervisor(self.root)
        return {name: supervisor.pid(name) for name in self.state().processes}

    def alerts(self, deployment_id: str, subject_id: str) -> dict:
        """The subject's alert, once `lfr alert list` shows it."""

        def listed():
            out = self.ok("alert", "list", "--deployment", deployment_id, "--json")
            found = [a for a in map(json.loads, out.splitlines()) if a["subject_id"] == subject_id]
            assert found, f"no alert for {subject_id} yet"
            return found[0]

        return eventually(listed, timeout_s=180, interval_s=1)


@pytest.fixture
def lfr(tmp_path, data_dir, models_dir):
    lfr = Lfr(tmp_path / "stack", data_dir, models_dir)
    try:
        yield lfr
    finally:
        lfr("stack", "down")


def test_the_readme_flow_from_stack_up_to_the_report_after_close(lfr, tmp_path, data_dir):
    lfr.ok("stack", "up")
    first = lfr.pids()
    # The stages run one replica per core by default (detect-1, detect-2, ... on 2 cores).
    assert {service_of(name) for name in first} == {
        "broker", "redis", "deployments", "detect", "embed", "match", "alert", "console", "ingest"
    }  # fmt: skip
    for stage in ("detect", "embed", "match", "alert"):
        assert sorted(n for n in first if service_of(n) == stage) == replica_names(stage, default_replicas())
    again = lfr("stack", "up")  # a running stack is checked, and left as it is
    assert again.returncode == 0 and "already up" in again.stderr and lfr.pids() == first

    deployment_id = lfr.create("Op Harbour")
    watchlist = demo_data.build_watchlist(data_dir, tmp_path / "watchlist")
    lfr.enrol(deployment_id, watchlist)
    lfr.ok("watchlist", "review", deployment_id, "--officer", "Insp. Reviewer")
    notice = json.loads(lfr.ok("transparency", "notice", deployment_id))
    jsonschema.validate(notice, transparency.schema(transparency.NOTICE_SCHEMA))
    assert (notice["location"], notice["where"], notice["watchlist_categories"]) == (
        "Station Road", "crime_hotspot", {"wanted": notice["watchlist_size"]}
    )  # fmt: skip
    video = data_dir / "video" / demo_data.ENROLLED_CLIPS[0]
    lfr.ok("stack", "up", "--video", str(video), "--deployment", deployment_id)
    repointed = lfr.pids()
    # Re-pointing ingest keeps every other process, and `stack down` can still stop them all.
    assert {k: v for k, v in repointed.items() if k != "ingest"} == {k: v for k, v in first.items() if k != "ingest"}
    assert repointed["ingest"] != first["ingest"]

    alert = lfr.alerts(deployment_id, "liveportrait-d0")
    assert alert["state"] == "raised" and alert["camera_id"] == "cam-1" and alert["score"] >= alert["threshold"]

    decided = json.loads(
        lfr.ok("alert", "adjudicate", alert["alert_id"], "--outcome", "true", "--officer", "PC 1234", "--json")
    )
    assert (decided["state"], decided["outcome"], decided["changed"]) == ("adjudicated", "true", True)
    assert decided["adjudication"]["officer"] == "PC 1234" and decided["adjudication"]["recorded_by"] == "local-officer"
    conflict = lfr("alert", "adjudicate", alert["alert_id"], "--outcome", "false", "--officer", "PC 2")
    assert conflict.returncode == 4 and "only a supervisor may correct it" in conflict.stderr
    viewer = lfr("alert", "adjudicate", alert["alert_id"], "--outcome", "false", "--officer", "PC 2", "--viewer")
    assert viewer.returncode == 5
    missing = lfr("alert", "adjudicate", "no-such-alert", "--outcome", "true", "--officer", "PC 2")
    assert missing.returncode == 3 and "no alert" in missing.stderr
    no_officer = lfr("alert", "adjudicate", alert["alert_id"], "--outcome", "true", "--officer", " ")
    assert no_officer.returncode == 2

    closed = json.loads(lfr.ok("deployment", "close", deployment_id, "--reason", "operation over", "--json"))
    assert closed["state"] == "closed" and closed["deletion"]["reference_images_deleted"] >= 15
    report = json.loads(lfr.ok("deployment", "report", deployment_id, "--json"))
    assert report["state"] == "closed" and report["purpose"] == "wanted persons"
    assert report["outcomes"]["true_alerts"] == 1 and report["faces_scanned"] > 0
    assert report["false_alerts_per_alert"] == {
        "count": 0, "total": report["outcomes"]["alerts"], "rate": 0.0, "lower_95": 0.0,
        "upper_95": report["false_alerts_per_alert"]["upper_95"],
    }  # fmt: skip
    assert "# Deployment report: Op Harbour" in lfr.ok("deployment", "report", deployment_id, "--markdown")
    unknown = lfr("deployment", "report", "dep-0000000000000000")
    assert unknown.returncode == 3
    # What a subject may ask, after the watchlist is destroyed: answered from the ids-only manifest.
    listed = json.loads(lfr.ok("watchlist", "was-listed", "liveportrait-d0", "--json"))
    assert [x["deployment_id"] for x in listed["listings"]] == [deployment_id]
    assert listed["listings"][0]["state"] == "closed" and listed["listings"][0]["where"] == "crime_hotspot"
    manifest = json.loads(lfr.ok("deployment", "manifest", deployment_id, "--json"))
    assert len(manifest["entries"]) == closed["deletion"]["reference_images_deleted"] and manifest["kept_until"]
    assert set(manifest["entries"][0]) == {
        "entry_id", "subject_id", "category", "source_reference", "approved_by", "enrolled_at", "image_source",
        "legal_basis", "image_date", "minor",
    }  # fmt: skip
    assert {e["legal_basis"] for e in manifest["entries"]} == {"research_and_testing"}
    assert "false alerts predicted / observed" in lfr.ok("deployment", "report", deployment_id, "--markdown")
    # What the force publishes afterwards: the record validates and agrees with the report, and holds
    # no subject id, image or template.
    today = dt.datetime.now(dt.UTC).date()
    published = tmp_path / "published"
    lfr.ok("transparency", "record", "--from", str(today - dt.timedelta(days=1)), "--to",
           str(today + dt.timedelta(days=1)), "--out", str(published))  # fmt: skip
    [record_file] = published.glob("record-*.json")
    record = json.loads(record_file.read_text())
    jsonschema.validate(record, transparency.schema(transparency.RECORD_SCHEMA))
    [entry] = [e for e in record["deployments"] if e["deployment_id"] == deployment_id]
    assert (entry["faces_scanned"], entry["alerts"], entry["true_alerts"], entry["false_alerts"]) == (
        report["faces_scanned"], report["outcomes"]["alerts"], report["outcomes"]["true_alerts"],
        report["outcomes"]["false_alerts"],
    )  # fmt: skip
    text = "".join(p.read_text() for p in published.iterdir())
    subjects = {e["subject_id"] for e in manifest["entries"]}
    assert not [s for s in subjects if s in text] and "Insp. B" not in text
    assert max((len(v) for v in re.findall(r"[A-Za-z0-9+/=]{200,}", text)), default=0) == 0  # no encoded image
    # The whole audit trail of the flow holds: every entry chained, none changed, dropped or reordered.
    assert "chain holds" in lfr.ok("audit", "verify")
    # Bus failure 4: after the close no record on any topic yields a face (crops were in clear on the
    # match and alert topics); frames, faces and crops are sealed under the shredded data key.
    state = lfr.state()
    on_the_bus = asyncio.run(clear_images(state.kafka_bootstrap_servers, state.topic_prefix))
    read = {t.base_name for t in (FRAMES_CAPTURED, FACES_DETECTED, FACES_EMBEDDED, MATCHES_FOUND, ALERTS_RAISED)}
    assert {t for t in read if on_the_bus.get(state.topic_prefix + t, (0, 0))[0] > 0} == read
    assert {t: images for t, (_, images) in on_the_bus.items() if images} == {}

    # What the stack writes is its user's alone: the folder 0700, the logs and the watchlist 0600.
    assert stat.S_IMODE((lfr.root).stat().st_mode) == 0o700
    assert stat.S_IMODE((lfr.root / "kek").stat().st_mode) == 0o600
    assert stat.S_IMODE((lfr.root / "logs" / "deployments.log").stat().st_mode) == 0o600
    # A deployment left open when the stack stops is closed through the DeploymentService (audited),
    # and nothing of any deployment stays on disk: Redis's file, the watchlists, the key-encryption key.
    left_open = lfr.create("Op Left Open")
    lfr.enrol(left_open, watchlist)
    # Every copy of its watchlist: the deployments service's, and each match replica's.
    assert (lfr.root / "deployments-data" / left_open).exists()
    for replica in (n for n in first if service_of(n) == "match"):
        assert (lfr.root / "match-data" / replica / left_open).exists()
    stopped = lfr("stack", "down")
    assert stopped.returncode == 0 and f"closed and erased 1 open deployment(s): {left_open}" in stopped.stderr
    assert not (lfr.root / "stack.json").exists()
    assert not any(pid_alive(pid) for pid in repointed.values() if pid) and marked_processes(lfr.root) == []
    assert not any((lfr.root / name).exists() for name in ("redis", "deployments-data", "match-data", "kek"))


def test_a_killed_replica_comes_back_by_itself_and_the_stack_keeps_its_deployment(lfr, tmp_path, data_dir):
    lfr.ok("stack", "up", "--replicas", "2")
    deployment_id = lfr.create("Op Restart")
    watchlist = demo_data.build_watchlist(data_dir, tmp_path / "watchlist")
    lfr.enrol(deployment_id, watchlist)
    lfr.ok("watchlist", "review", deployment_id, "--officer", "Insp. Reviewer")
    before = lfr.pids()
    os.kill(before["match-1"], 9)

    def back():
        pid = lfr.pids()["match-1"]
        assert pid is not None and pid != before["match-1"], "match-1 is not back yet"
        assert json.loads(lfr.ok("stack", "status"))["services"]["match-1"]["ready"]

    eventually(back, timeout_s=60)
    assert {k: v for k, v in lfr.pids().items() if k != "match-1"} == {
        k: v for k, v in before.items() if k != "match-1"
    }
    assert json.loads(lfr.ok("deployment", "get", deployment_id, "--json"))["state"] == "active"
    # `make up VIDEO=... DEPLOYMENT=...` streams into the same stack: no second one.
    video = data_dir / "video" / demo_data.ENROLLED_CLIPS[0]
    lfr.ok("stack", "up", "--video", str(video), "--deployment", deployment_id)
    assert lfr.pids()["redis"] == before["redis"] and lfr.pids()["deployments"] == before["deployments"]
    assert lfr.alerts(deployment_id, "liveportrait-d0")["camera_id"] == "cam-1"


def test_a_killed_supervisor_never_discards_a_deployment_without_its_close(lfr, tmp_path, data_dir):
    """Issue 25 (8): with its supervisor killed (every process of the stack goes with it), the next
    `make up` or `make down` removed the stack's data: its deployment and watchlist were gone with no
    close, no deletion report and no audit event. Now they start its Redis and deployments service
    again and close each open deployment, audited and reported, before anything is removed."""
    lfr.ok("stack", "up", "--replicas", "1")
    deployment_id = lfr.create("Op Orphan")
    watchlist = demo_data.build_watchlist(data_dir, tmp_path / "watchlist")
    lfr.enrol(deployment_id, watchlist)
    old = marked_processes(lfr.root)
    os.kill(lfr.state().supervisor_pid, 9)
    eventually(lambda: _none_alive(old), timeout_s=30)  # its children end with it (PR_SET_PDEATHSIG)
    down = lfr("stack", "down")
    assert down.returncode == 0, down.stderr
    assert f"closed and erased 1 open deployment(s): {deployment_id}" in down.stderr, down.stderr
    # The stack's one deployment, closed by its revived deployments service (its log, kept with the stack's logs).
    logged = (lfr.root / "logs" / "deployments.log").read_text()
    for event in ("deployment.closed", "deployment.data_deleted", "deployment.reported"):
        assert f"audit {event}" in logged, event
    assert marked_processes(lfr.root) == [] and not (lfr.root / "redis").exists()


def test_redis_killed_then_up_with_a_camera_then_down_leaves_no_process(lfr, tmp_path, data_dir):
    lfr.ok("stack", "up")
    deployment_id = lfr.create("Op Redis")
    eventually(lambda: _in_redis_file(lfr.root, deployment_id), timeout_s=10)  # written to its append-only file
    before = lfr.pids()
    os.kill(before["redis"], 9)
    eventually(lambda: _answers(lfr, deployment_id), timeout_s=60)  # restarted, from its file
    assert lfr.pids()["redis"] != before["redis"]
    video = data_dir / "video" / demo_data.ENROLLED_CLIPS[0]
    up = lfr("stack", "up", "--video", str(video), "--deployment", deployment_id)
    assert up.returncode == 0 and "ingest restarted" in up.stderr, up.stderr  # the same stack, re-pointed
    assert {k: v for k, v in lfr.pids().items() if k not in ("redis", "ingest")} == {
        k: v for k, v in before.items() if k not in ("redis", "ingest")
    }
    lfr.ok("stack", "down")
    assert marked_processes(lfr.root) == [] and not (lfr.root / "stack.json").exists()


def _in_redis_file(root: Path, deployment_id: str) -> None:
    written = b"".join(f.read_bytes() for f in (root / "redis").rglob("*.aof*") if f.is_file())
    assert deployment_id.encode() in written, "not in Redis's append-only file yet"


def _answers(lfr: Lfr, deployment_id: str) -> None:
    got = lfr("deployment", "get", deployment_id, "--json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["deployment_id"] == deployment_id


def test_down_finds_every_process_of_the_stack_whatever_happened_to_its_state_file(lfr):
    lfr.ok("stack", "up", "--replicas", "1")
    running = marked_processes(lfr.root)
    assert len(running) >= 9  # the supervisor, broker, Redis and the seven services
    (lfr.root / "stack.json").unlink()
    lfr.ok("stack", "down")
    assert marked_processes(lfr.root) == [] and not any(pid_alive(p) for p in running)


def test_a_dead_stack_is_not_reported_up_and_a_new_one_starts(lfr):
    lfr.ok("stack", "up")
    state = lfr.state()
    old = marked_processes(lfr.root)
    # As if the machine had rebooted: every process gone, the state file left behind.
    for pid in old:
        os.kill(pid, 9)
    eventually(lambda: _none_alive(old), timeout_s=30)
    restarted = lfr("stack", "up")
    assert restarted.returncode == 0 and "not running any more" in restarted.stderr
    status = lfr("stack", "status")
    assert status.returncode == 0
    password = urlsplit(lfr.state().redis_url).password
    assert password and password not in status.stdout and ":***@" in status.stdout  # never on a screen
    assert set(marked_processes(lfr.root)).isdisjoint(old) and lfr.state().tokens != state.tokens


def _none_alive(pids: list[int]) -> None:
    assert not any(pid_alive(p) for p in pids)


def test_a_stack_that_cannot_start_leaves_nothing_behind(lfr, tmp_path):
    lfr.env["LFR_MATCH_TOP_K"] = "5"  # a setting match no longer has: it refuses to start, naming it
    failed = lfr("stack", "up")
    assert failed.returncode == 1 and any(f"{n} exited" in failed.stderr for n in ("match", "match-1")), failed.stderr
    assert not (lfr.root / "stack.json").exists()
    assert lfr("stack", "status").returncode == 1
    assert marked_processes(lfr.root) == []


def _bench(cwd: Path, data_dir: Path, models_dir: Path, **env: str) -> subprocess.Popen:
    """`make bench` (its embed section: a stack of the deployments service and detect), in `cwd`."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("LFR_KAFKA_", "LFR_REDIS_"))}
    environ.update(LFR_DATA_DIR=str(data_dir), LFR_MODELS_DIR=str(models_dir), **env)
    return subprocess.Popen(
        [sys.executable, "-m", "lfr_bench", "--only", "embed", "--seconds", "5"],
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_a_benchmark_killed_mid_section_leaves_no_process(tmp_path, data_dir, models_dir):
    bench = _bench(tmp_path, data_dir, models_dir)
    root = tmp_path / "var" / "bench" / "embed-stack"
    try:

        def stack_running():
            assert len(marked_processes(root)) >= 4, "the benchmark's stack is not up yet"  # supervisor, broker, ...

        eventually(stack_running, timeout_s=180)
    finally:
        bench.kill()  # SIGKILL: nothing of the benchmark runs its clean-up
        bench.wait(30)

    def all_gone():
        assert marked_processes(root) == [], "processes of the benchmark's stack still run"

    eventually(all_gone, timeout_s=60)


def test_a_benchmark_that_fails_in_a_section_leaves_no_process(tmp_path, data_dir, models_dir):
    bench = _bench(tmp_path, data_dir, models_dir, LFR_DETECT_MIN_SCORE="5")  # out of range: detect refuses
    output, _ = bench.communicate(timeout=300)
    assert bench.returncode != 0 and b"detect exited" in output, output[-2000:]
    assert marked_processes(tmp_path / "var" / "bench" / "embed-stack") == []
