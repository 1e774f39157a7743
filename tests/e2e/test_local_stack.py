"""The local stack as the README drives it, through the `lfr` command in processes: `lfr stack up`,
a deployment with a camera, enrolment, `lfr stack up --video ... --deployment ...`, `lfr alert
list`, `lfr alert adjudicate`, `lfr deployment close`, `lfr deployment report --json`,
`lfr stack down`; and the stack's own reliability (every pid kept, a failed or dead stack cleaned)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lfr_cli import demo_data
from lfr_cli.stack import StackState, default_replicas, pid_alive, replica_names, service_of

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

    def state(self) -> StackState:
        state = StackState.load(self.root)
        assert state is not None
        return state


@pytest.fixture
def lfr(tmp_path, data_dir, models_dir):
    lfr = Lfr(tmp_path / "stack", data_dir, models_dir)
    try:
        yield lfr
    finally:
        lfr("stack", "down")


def test_the_readme_flow_from_stack_up_to_the_report_after_close(lfr, tmp_path, data_dir):
    lfr.ok("stack", "up")
    first = lfr.state()
    # The stages run one replica per core by default (detect-1, detect-2, ... on 2 cores).
    assert {service_of(name) for name in first.pids} == {
        "broker", "redis", "deployments", "detect", "embed", "match", "alert", "console", "ingest"
    }  # fmt: skip
    for stage in ("detect", "embed", "match", "alert"):
        assert sorted(n for n in first.pids if service_of(n) == stage) == replica_names(stage, default_replicas())
    again = lfr("stack", "up")  # a running stack is checked, and left as it is
    assert again.returncode == 0 and "already up" in again.stderr and lfr.state().pids == first.pids

    deployment_id = lfr.ok(
        "deployment", "create", "--name", "Op Harbour", "--purpose", "wanted persons", "--officer", "Supt. A",
        "--hours", "2", "--camera", "van-1/cam-1",
    ).strip()  # fmt: skip
    watchlist = demo_data.build_watchlist(data_dir, tmp_path / "watchlist")
    lfr.ok("watchlist", "enrol", deployment_id, str(watchlist), "--category", "wanted", "--approved-by", "Insp. B")
    video = data_dir / "video" / demo_data.ENROLLED_CLIPS[0]
    lfr.ok("stack", "up", "--video", str(video), "--deployment", deployment_id)
    repointed = lfr.state()
    # Re-pointing ingest keeps every other process, and `stack down` can still stop them all.
    assert {k: v for k, v in repointed.pids.items() if k != "ingest"} == {
        k: v for k, v in first.pids.items() if k != "ingest"
    }
    assert repointed.pids["ingest"] != first.pids["ingest"]

    deadline = time.monotonic() + 180
    while True:
        alerts = [
            json.loads(line) for line in lfr.ok("alert", "list", "--deployment", deployment_id, "--json").splitlines()
        ]
        if any(a["subject_id"] == "liveportrait-d0" for a in alerts) or time.monotonic() > deadline:
            break
        time.sleep(1)
    alert = next(a for a in alerts if a["subject_id"] == "liveportrait-d0")
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

    # What the stack writes is its user's alone: the folder 0700, the logs and the watchlist 0600.
    assert stat.S_IMODE((lfr.root).stat().st_mode) == 0o700
    assert stat.S_IMODE((lfr.root / "kek").stat().st_mode) == 0o600
    assert stat.S_IMODE((lfr.root / "logs" / "deployments.log").stat().st_mode) == 0o600
    # A deployment left open when the stack stops is closed through the DeploymentService (audited),
    # and nothing of any deployment stays on disk: Redis's file, the watchlists, the key-encryption key.
    left_open = lfr.ok(
        "deployment", "create", "--name", "Op Left Open", "--purpose", "wanted persons", "--officer", "Supt. A",
        "--hours", "2", "--camera", "van-1/cam-1",
    ).strip()  # fmt: skip
    lfr.ok("watchlist", "enrol", left_open, str(watchlist), "--category", "wanted", "--approved-by", "Insp. B")
    # Every copy of its watchlist: the deployments service's, and each match replica's.
    assert (lfr.root / "deployments-data" / left_open).exists()
    for replica in (n for n in first.pids if service_of(n) == "match"):
        assert (lfr.root / "match-data" / replica / left_open).exists()
    stopped = lfr("stack", "down")
    assert stopped.returncode == 0 and f"closed and erased 1 open deployment(s): {left_open}" in stopped.stderr
    assert not (lfr.root / "stack.json").exists()
    assert not any(pid_alive(pid) for pid in repointed.pids.values())
    assert not any((lfr.root / name).exists() for name in ("redis", "deployments-data", "match-data", "kek"))


def test_a_dead_stack_is_not_reported_up_and_a_new_one_starts(lfr):
    lfr.ok("stack", "up")
    state = lfr.state()
    for pid in state.pids.values():  # as if the machine had rebooted: the state file outlived the processes
        os.kill(pid, 9)
    restarted = lfr("stack", "up")
    assert restarted.returncode == 0 and "not running any more" in restarted.stderr
    status = lfr("stack", "status")
    assert status.returncode == 0
    password = urlsplit(lfr.state().redis_url).password
    assert password and password not in status.stdout and ":***@" in status.stdout  # never on a screen
    assert set(lfr.state().pids.values()).isdisjoint(state.pids.values())


def test_a_stack_that_cannot_start_leaves_nothing_behind(lfr, tmp_path):
    lfr.env["LFR_MATCH_TOP_K"] = "5"  # a setting match no longer has: it refuses to start, naming it
    failed = lfr("stack", "up")
    assert failed.returncode == 1 and any(f"{n} exited" in failed.stderr for n in ("match", "match-1")), failed.stderr
    assert not (lfr.root / "stack.json").exists()
    assert lfr("stack", "status").returncode == 1
