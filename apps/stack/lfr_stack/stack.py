"""A local stack: start it, use it, stop it; and `down`, which stops one from outside.

Anything given from outside (a broker, a Redis) is used as is; everything this module starts runs
under the stack's supervisor (lfr_stack.supervisor) and is stopped with it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from lfr_platform.auth import ROLES
from lfr_platform.settings import PlatformSettings, ToolSettings
from lfr_stack import infrastructure, wiring
from lfr_stack.processes import StackError, free_port, listening_ports, private_files, stop_marked, wait_for_port
from lfr_stack.state import StackState
from lfr_stack.supervisor import Supervisor

# What a stack writes under its folder that holds deployments: Redis's append-only file (records,
# wrapped data keys, alert state), the watchlist shards (the deployments service's and each match
# replica's copy), the key-encryption key, the broker's topics (sealed frames, alerts with their
# crops). Logs stay (0600).
STACK_DATA = ("redis", "deployments-data", "match-data", "kek", "broker")


class Stack:
    def __init__(
        self,
        root: Path,
        *,
        kafka: str | None = None,
        redis_url: str | None = None,
        models_dir: Path | None = None,
        extra_env: dict[str, str] | None = None,
        foreground: bool = True,
    ) -> None:
        """`foreground`: the stack ends when this process ends, however it ends (the demo, the tests,
        the benchmarks); otherwise it runs on in the background until `down` (`make up`)."""
        self.root = Path(root).resolve()
        self.log_dir = self.root / "logs"
        self.external_kafka = kafka
        self.broker = ToolSettings().broker
        self.external_redis = redis_url
        self.models_dir = Path(models_dir or PlatformSettings().models_dir).resolve()
        self.extra_env = extra_env or {}
        self.foreground = foreground
        self.supervisor = Supervisor(self.root)
        self.state: StackState | None = None

    @classmethod
    def attach(cls, root: Path, state: StackState, **kwargs) -> Stack:
        """The stack running in `root` (started by another process, e.g. `make up`)."""
        stack = cls(root, **kwargs)
        stack.state = state
        return stack

    # --- lifecycle -------------------------------------------------------------------------
    def start(
        self,
        services: tuple[str, ...] = ("deployments", "detect", "embed", "match", "alert"),
        cameras: list[dict] | None = None,
        van_id: str = "van-1",
        timeout_s: float = 120,
        replicas: int = 1,
    ) -> StackState:
        """Start the supervisor, the broker and Redis (unless given), and the services; the SCALABLE
        ones as `replicas` processes each. Each process is registered before the next starts, and any
        failure stops everything started so far."""
        partitions = int(self.extra_env.get("LFR_TOPIC_PARTITIONS") or PlatformSettings().topic_partitions)
        if replicas < 1 or replicas > partitions:
            raise StackError(
                f"{replicas} replicas per stage, but the topics have {partitions} partitions: a replica without a "
                "partition would sit idle (set LFR_TOPIC_PARTITIONS, or fewer replicas)"
            )
        try:
            self._start_infrastructure(replicas)
            names = []
            for service in services:
                for name in wiring.replica_names(service, replicas if service in wiring.SCALABLE else 1):
                    self.start_service(name, cameras=cameras, van_id=van_id)
                    names.append(name)
            self.wait_ready(tuple(names), timeout_s)
        except BaseException:
            self.stop()  # nothing half-started is left behind, and no stale stack.json
            raise
        return self.state

    def _start_infrastructure(self, replicas: int) -> None:
        with private_files():
            self.root.mkdir(parents=True, exist_ok=True)
            self.log_dir.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self.log_dir.chmod(0o700)
        kek = self.root / "kek"
        if not kek.exists():  # the stack's key-encryption key: data keys in Redis are wrapped by it
            with private_files():
                kek.write_bytes(os.urandom(32))
        run_id = secrets.token_hex(3)
        broker_port = None if self.external_kafka else free_port()
        redis_port, password = (None, None) if self.external_redis else (free_port(), secrets.token_urlsafe(24))
        self.state = StackState(
            root=str(self.root),
            kafka_bootstrap_servers=self.external_kafka or f"127.0.0.1:{broker_port}",
            redis_url=self.external_redis or infrastructure.redis_url(redis_port, password),
            # A shared broker or Redis gets a namespace of this stack's own.
            topic_prefix="" if not self.external_kafka else f"lfr-{run_id}.",
            redis_prefix="lfr" if not self.external_redis else f"lfr-{run_id}",
            grpc_address=f"127.0.0.1:{free_port()}",
            broker="" if self.external_kafka else self.broker,
            alert_grpc_address=f"127.0.0.1:{free_port()}",
            console_url=f"http://127.0.0.1:{free_port()}/",
            tokens={name: secrets.token_urlsafe(24) for name in (*ROLES, wiring.RATIFIER)},
            planned_replicas=replicas,
        )
        self.state.save()  # before anything runs: a stop from here on finds what to stop
        self.state.supervisor_pid = self.supervisor.start(
            dict(os.environ), self.log_dir / "supervisor.log", foreground=self.foreground
        )
        self.state.save()
        with private_files():
            if broker_port is not None:
                command = infrastructure.broker_command(self.broker, broker_port, self.root / "broker")
                self._add("broker", command, dict(os.environ))
                wait_for_port(broker_port, 20)
            if redis_port is not None:
                command = infrastructure.redis_command(
                    redis_port, self.log_dir / "redis.log", data_dir=self.root / "redis", password=password
                )
                self._add("redis", command, dict(os.environ))
                wait_for_port(redis_port, 20)

    def revive(self, state: StackState, timeout_s: float = 120) -> StackState:
        """A stack whose supervisor died (killed, or the machine restarted) with deployments in its
        data: a new supervisor runs its broker and Redis again on the ports and folders the state names
        (Redis reads its append-only file; the key-encryption key is on disk) and its deployments
        service, so that each open deployment can be closed as any close is: audited, its data deleted
        and its report written. Only what the stack itself ran is started again."""
        state.processes, state.fixed_ports = [], {}
        self.state = state
        state.save()
        state.supervisor_pid = self.supervisor.start(
            dict(os.environ), self.log_dir / "supervisor.log", foreground=self.foreground
        )
        state.save()
        with private_files():
            if state.broker:  # a broker of its own (noida-db keeps its records in its folder; tansu none)
                port = int(state.kafka_bootstrap_servers.rsplit(":", 1)[1])
                self._add(
                    "broker", infrastructure.broker_command(state.broker, port, self.root / "broker"), {**os.environ}
                )
                wait_for_port(port, 20)
            if (self.root / "redis").is_dir():  # a Redis of its own, its append-only file in that folder
                url = urlsplit(state.redis_url)
                command = infrastructure.redis_command(
                    url.port, self.log_dir / "redis.log", data_dir=self.root / "redis", password=url.password
                )
                self._add("redis", command, dict(os.environ))
                wait_for_port(url.port, 20)
        self.start_service("deployments")
        self.wait_ready(("deployments",), timeout_s)
        return state

    def _add(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        assert self.state is not None
        self.state.processes.append(name)  # registered before it starts
        self.state.save()
        self.supervisor.add(name, argv, env, self.log_dir / f"{name}.log")

    def start_service(self, name: str, *, cameras: list[dict] | None = None, van_id: str = "van-1") -> None:
        """Start one process: a service (`detect`) or one replica of it (`detect-2`), supervised."""
        assert self.state is not None
        service = wiring.service_of(name)
        if service not in wiring.SERVICES:
            raise StackError(
                f"no service {name!r}: one of {', '.join(wiring.SERVICES)} (replicas as match-1, match-2, ...)"
            )
        if name in self.state.processes:
            raise StackError(f"{name} runs already")
        if service == "alert":  # the first replica serves the stack's AlertService address
            first = name in ("alert", "alert-1")
            port = int(self.state.alert_grpc_address.rsplit(":", 1)[1]) if first else free_port()
            self.state.fixed_ports[name] = [port]
        elif service == "deployments":
            self.state.fixed_ports[name] = [int(self.state.grpc_address.rsplit(":", 1)[1])]
        elif service == "console":
            self.state.fixed_ports[name] = [int(self.state.console_url.rstrip("/").rsplit(":", 1)[1])]
        process = wiring.Process(name, self.state, self.models_dir, cameras or [], van_id)
        with private_files():
            self._add(name, [sys.executable, "-m", f"lfr_{service}"], wiring.environment(process, self.extra_env))

    def stop_service(self, name: str) -> None:
        """Stop a process for good (not restarted)."""
        assert self.state is not None
        if name in self.state.processes:
            self.supervisor.remove(name)
            self.state.processes.remove(name)
            self.state.fixed_ports.pop(name, None)
            self.state.save()

    def stop(self) -> None:
        """Stop every process of the stack (services first: they flush to the broker and Redis), then
        the supervisor; remove the state file and what the stack wrote that holds deployments."""
        stop(self.root)

    # --- the processes, as they run ----------------------------------------------------------
    def pid(self, name: str) -> int | None:
        return self.supervisor.pid(name)

    def kill(self, name: str) -> int:
        """SIGKILL a process, as a crash would: the supervisor starts it again. Returns the pid killed."""
        return self.supervisor.kill(name)

    def halt(self, name: str, *, abruptly: bool = False) -> None:
        """Stop a process and keep it stopped until `resume` (`abruptly`: SIGKILL, as a crash)."""
        self.supervisor.halt(name, abruptly=abruptly)

    def resume(self, name: str) -> None:
        self.supervisor.resume(name)

    def replicas(self, service: str) -> list[str]:
        """The processes of a service."""
        assert self.state is not None
        return sorted(n for n in self.state.processes if wiring.service_of(n) == service)

    def http_port(self, name: str) -> int | None:
        """Where the process serves /metrics, /healthz, /readyz now (it binds port 0, so a restarted
        process has another); None while it is not listening."""
        assert self.state is not None
        return http_port(self.state, self.supervisor, name)

    def ready(self, name: str) -> bool:
        port = self.http_port(name)
        return port is not None and service_ready(port)

    def wait_ready(self, names: tuple[str, ...], timeout_s: float) -> None:
        """Until every process answers ready; a process that exits meanwhile fails it, naming its log."""
        deadline = time.monotonic() + timeout_s
        for name in names:
            first = None  # the process first seen: another one later means it died meanwhile
            while not self.ready(name):
                pid = self.pid(name)
                first = first or pid
                if pid is not None and pid != first:
                    raise StackError(f"{name} exited before it was ready; see {self.log_dir / (name + '.log')}")
                if time.monotonic() > deadline:
                    raise StackError(f"{name} not ready after {timeout_s}s; see {self.log_dir / (name + '.log')}")
                time.sleep(0.1)

    def scrape(self, service: str) -> dict[tuple[str, tuple], float]:
        """A service's metrics, summed over its replicas (those listening now)."""
        from prometheus_client.parser import text_string_to_metric_families

        samples: dict[tuple[str, tuple], float] = {}
        for name in self.replicas(service):
            port = self.http_port(name)
            if port is None:
                continue
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                text = response.read().decode()
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    samples[key] = samples.get(key, 0.0) + sample.value
        return samples

    def starts(self, name: str) -> int:
        """How often the process was started (by the supervisor) within the last minute."""
        try:
            return len(json.loads((self.supervisor.run_dir / f"{name}.starts").read_text()))
        except (OSError, ValueError):
            return 0


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum of the scraped samples `name` whose labels include `labels`."""
    return sum(
        v for (n, lbl), v in samples.items() if n == name and all(dict(lbl).get(k) == w for k, w in labels.items())
    )


def http_port(state: StackState, supervisor: Supervisor, name: str) -> int | None:
    pid = supervisor.pid(name) if name in state.processes else None
    if pid is None:
        return None
    ports = listening_ports(pid) - set(state.fixed_ports.get(name, []))
    return min(ports) if len(ports) == 1 else None


def service_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def close_open_deployments(state: StackState, actor_note: str = "the local stack was stopped") -> list[str]:
    """Close every open deployment through the DeploymentService (each close audited and its data
    erased as in production). Returns the ids closed; raises StackError if the service does not answer."""
    from lfr.v1 import deployments_pb2 as pb
    from lfr_contracts.clients import DeploymentClient

    token = state.tokens.get("manager")
    if not token or not state.grpc_address:
        raise StackError("the stack has no DeploymentService address or manager token")
    closed = []
    try:
        with DeploymentClient(state.grpc_address, token, timeout_s=30) as client:
            for deployment in client.list():
                if deployment.state in (pb.DEPLOYMENT_STATE_PLANNED, pb.DEPLOYMENT_STATE_ACTIVE):
                    client.close(deployment.deployment_id, reason=actor_note)
                    closed.append(deployment.deployment_id)
    except Exception as exc:  # grpc.RpcError and connection failures alike
        raise StackError(f"the DeploymentService did not close the open deployments: {exc}") from exc
    return closed


def remove_stack_data(root: Path) -> list[str]:
    """Remove what the stack wrote that holds deployments (STACK_DATA). Returns what was removed."""
    removed = []
    for name in STACK_DATA:
        path = Path(root) / name
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(name)
        elif path.exists():
            path.unlink()
            removed.append(name)
    return removed


def stop(root: Path, *, keep_data: bool = False) -> list[int]:
    """Stop the stack in `root` from outside, whatever state it is in: its supervisor's processes
    (services first), the supervisor, then any process still marked as the stack's (its state file
    lost or stale, its supervisor killed). Removes the state file and the stack's data. Returns the
    pids that had to be found by their marker."""
    root = Path(root).resolve()
    state, supervisor = StackState.load(root), Supervisor(root)
    if supervisor.answers():
        # The services first, the last started first (they flush to the broker and Redis as they stop;
        # the supervisor takes one command at a time), then the broker and Redis with the supervisor.
        order = state.processes if state is not None else supervisor.names()
        for name in reversed([n for n in order if n not in ("broker", "redis")]):
            try:
                supervisor.halt(name)
            except StackError:
                pass  # gone already, or not ours: the quit below and the marker search stop it
        try:
            supervisor.quit()
        except StackError:
            pass  # what is left is found by its marker below
    strays = stop_marked(root)
    for socket_file in supervisor.run_dir.glob("*.sock"):  # a stopped supervisor's control sockets
        socket_file.unlink(missing_ok=True)
    if keep_data:  # its deployments are still in it: the state file says how to reach them again
        return strays
    (root / "stack.json").unlink(missing_ok=True)
    remove_stack_data(root)
    if state is None and not strays:
        return []
    return strays


def down(root: Path, *, report: Callable[[str], None] | None = None) -> bool:
    """`make down`: close the open deployments through the DeploymentService (each close audited),
    then stop every process of the stack and remove what it wrote. False if nothing was running. If
    the deployments service no longer answers, the data is removed all the same (a stack that is
    down keeps nothing), and `report` is told which deployments went without a close."""
    report = report or (lambda line: None)
    root = Path(root).resolve()
    state, supervisor = StackState.load(root), Supervisor(root)
    running = supervisor.answers()
    if state is not None and not running and (root / "redis").is_dir():
        # Its supervisor died with deployments in its data: never discarded without their close.
        stop_marked(root)  # what is left of it, its files kept
        for socket_file in supervisor.run_dir.glob("*.sock"):
            socket_file.unlink(missing_ok=True)
        try:
            report(
                "the stack's supervisor had died: starting its Redis and deployments service to close its deployments"
            )
            Stack(root, foreground=False).revive(state)
            running = True
        except StackError as exc:
            stop(root, keep_data=True)
            raise StackError(
                f"the stack's deployments could not be closed ({exc}); its data is kept in {root} "
                "(run `lfr stack down` again, or remove the folder by hand: its deployments then go without a close)"
            ) from exc
    if state is not None and running and "deployments" in state.processes and supervisor.pid("deployments"):
        try:
            closed = close_open_deployments(state)
            if closed:
                report(f"closed and erased {len(closed)} open deployment(s): {', '.join(closed)}")
        except StackError as exc:
            report(f"warning: {exc}; their data is removed with the stack all the same")
    had_data = any((root / name).exists() for name in STACK_DATA)
    strays = stop(root)
    if strays:
        report(f"stopped {len(strays)} process(es) of the stack its supervisor no longer held: {strays}")
    if not running and state is None and not strays:
        if had_data:
            report("removed what an earlier stack left")
        return False
    return True
