"""`lfr stack up | down | status`: the local stack in the background, for `make up` / `make down`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console

from lfr_stack.infrastructure import external_infrastructure
from lfr_stack.processes import StackError, marked_processes
from lfr_stack.stack import Stack
from lfr_stack.stack import down as stack_down
from lfr_stack.state import StackState
from lfr_stack.supervisor import Supervisor
from lfr_stack.wiring import SERVICES

err = Console(stderr=True, soft_wrap=True)


def _cameras(video: str | None, deployment: str | None) -> list[dict]:
    if not video:
        return []
    if not deployment:
        raise StackError("--video needs --deployment: the deployment its cameras stream for")
    return [
        {"camera_id": f"cam-{i}", "deployment_id": deployment, "source": source.strip(), "loop": True}
        for i, source in enumerate(video.split(","), start=1)
    ]


def up(args, root: Path) -> int:
    try:
        cameras = _cameras(args.video, args.deployment)
        state = StackState.load(root)
        if state is not None and Supervisor(root).answers():
            # The stack runs (its supervisor restarts whatever died): never a second one beside it.
            if not cameras:
                err.print(f"the stack is already up (state in {root / 'stack.json'}); `make down` stops it")
                return 0
            stack = Stack.attach(root, state, foreground=False)
            stack.stop_service("ingest")  # re-pointed at the given cameras; the rest keeps running
            stack.start_service("ingest", cameras=cameras)
            stack.wait_ready(("ingest",), 60)
            err.print(f"ingest restarted with {len(cameras)} camera(s)")
            return 0
        if state is not None or marked_processes(root):
            # Its supervisor is gone (killed, or the machine restarted): stop what is left, start anew.
            err.print(f"the stack in {root} is not running any more; stopping what is left of it, starting a new one")
            stack_down(root, report=err.print)
        kafka, redis_url = external_infrastructure()
        stack = Stack(root, kafka=kafka, redis_url=redis_url, foreground=False)
        state = stack.start(services=SERVICES, cameras=cameras, replicas=args.replicas)
    except StackError as exc:
        err.print(f"[red]error:[/] {exc}")
        return 1
    err.print(
        f"stack up: DeploymentService at {state.grpc_address}, AlertService at {state.alert_grpc_address}; "
        f"logs in {root / 'logs'}; every process supervised (restarted if it dies)"
    )
    err.print(f"control room: {state.console_url} (sign in with a token of {root / 'stack.json'})")
    for name in state.processes:
        port = stack.http_port(name)
        if port is not None:
            err.print(f"  {name:9s} http://127.0.0.1:{port}/metrics")
    return 0


def down(args, root: Path) -> int:
    if stack_down(root, report=err.print):
        err.print("stack stopped")
    else:
        err.print("no stack was running")
    return 0


def status(args, root: Path) -> int:
    state = StackState.load(root)
    if state is None or not Supervisor(root).answers():
        err.print("no stack is running (make up starts one)")
        return 1
    stack = Stack.attach(root, state)
    report = {
        "grpc_address": state.grpc_address,
        "alert_grpc_address": state.alert_grpc_address,
        "console_url": state.console_url,
        "kafka": state.kafka_bootstrap_servers,
        "redis": _without_password(state.redis_url),  # the password is in stack.json (0600), not on screens
        "services": {},
    }
    # Every process by name (replicas as detect-1, detect-2, ...), with its pid, readiness and partitions.
    for name in state.processes:
        if name in ("broker", "redis"):
            continue
        entry: dict = {"pid": stack.pid(name), "starts_last_minute": stack.starts(name)}
        port = stack.http_port(name)
        if port is None:
            entry.update({"ready": False, "error": "not listening (starting, or restarting)"})
        else:
            entry["http_port"] = port
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    entry.update(json.load(r))
            except urllib.error.HTTPError as exc:
                entry.update(json.load(exc))
            except OSError as exc:
                entry.update({"ready": False, "error": str(exc)})
        report["services"][name] = entry
    print(json.dumps(report, indent=2))  # noqa: T201 - the command's output
    return 0 if all(s.get("ready") for s in report["services"].values()) else 1


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
