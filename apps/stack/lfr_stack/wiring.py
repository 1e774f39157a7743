"""How each process of the local stack is wired: its name, its replicas, and its environment (one
table, a function per service that needs more than the common wiring)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lfr_platform.settings import SERVICES as ALL_SERVICES
from lfr_stack.state import StackState

# Every service (lfr_platform.settings.SERVICES), in the order the stack starts them: the control
# plane first, ingest last (its cameras stream into a pipeline that is ready).
SERVICES = tuple(sorted(ALL_SERVICES, key=lambda s: (s != "deployments", s == "ingest")))
# Stages that run as several processes on the local stack (one consumer group, partitions shared).
# Each match replica holds its own copy of the watchlists (docs/decisions/0011); the first alert
# replica serves the AlertService on the stack's address, the others on ports of their own.
SCALABLE = ("detect", "embed", "match", "alert")

# A second manager's token: an urgent deployment is ratified by another principal than its creator
# (the local stack's `lfr deployment ratify` uses it), as a force's second officer would.
RATIFIER = "ratifier"


def role_of(token_name: str) -> str:
    """The role of a local stack token, named by its role, or the ratifier (a manager)."""
    return "manager" if token_name == RATIFIER else token_name


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


@dataclass(frozen=True)
class Process:
    """What a process of the stack needs to be wired: its name and the stack around it."""

    name: str
    state: StackState
    models_dir: Path
    cameras: list[dict] = field(default_factory=list)
    van_id: str = "van-1"

    @property
    def service(self) -> str:
        return service_of(self.name)

    @property
    def root(self) -> Path:
        return Path(self.state.root)

    @property
    def replicas(self) -> int:
        """Replicas of its stage: the planned ones, or more where more were started."""
        running = {n for n in self.state.processes if service_of(n) == self.service} | {self.name}
        return max(len(running), self.state.planned_replicas) if self.service in SCALABLE else 1


def _port(address: str) -> str:
    return address.rstrip("/").rsplit(":", 1)[1]


def _deployments(p: Process) -> dict[str, str]:
    return {
        "GRPC_PORT": _port(p.state.grpc_address),
        "DATA_DIR": str(p.root / "deployments-data"),
        "JANITOR_INTERVAL_S": "1",  # a close or an expiry seen within a second, not 5
    }


def _match(p: Process) -> dict[str, str]:
    return {
        "DATA_DIR": str(p.root / "match-data" / p.name),  # each replica's own copy of the watchlists
        "HEARTBEAT_INTERVAL_S": "1",
    }


def _alert(p: Process) -> dict[str, str]:
    return {"GRPC_PORT": str(p.state.fixed_ports[p.name][0]), "SWEEP_INTERVAL_S": "1"}


def _console(p: Process) -> dict[str, str]:
    return {
        "WEB_PORT": _port(p.state.console_url),
        "ALERT_ADDRESS": p.state.alert_grpc_address,
        "DEPLOYMENT_ADDRESS": p.state.grpc_address,
        "REFRESH_S": "1",
    }


def _ingest(p: Process) -> dict[str, str]:
    return {"VAN_ID": p.van_id, "CAMERAS": json.dumps(p.cameras)}


# A service's own wiring beyond the common one: LFR_<SERVICE>_<name> = value.
OWN: dict[str, Callable[[Process], dict[str, str]]] = {
    "deployments": _deployments,
    "match": _match,
    "alert": _alert,
    "console": _console,
    "ingest": _ingest,
}


def environment(p: Process, extra_env: dict[str, str]) -> dict[str, str]:
    """The process's environment: the user's own (their LFR_* settings apply), the stack's wiring
    over it, then `extra_env` (what a caller such as a benchmark asks for) over everything."""
    state = p.state
    env = dict(os.environ)
    if state.broker == "tansu":
        # tansu joins groups in half the session timeout: keep it short there
        # (real Kafka and noida-db refuse less than 6 s).
        env.update({"LFR_KAFKA_SESSION_TIMEOUT_MS": "2000", "LFR_KAFKA_HEARTBEAT_INTERVAL_MS": "500"})
    elif state.broker == "noida-db":
        env.update(
            {
                "LFR_KAFKA_SESSION_TIMEOUT_MS": "6000",
                "LFR_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
                "LFR_KAFKA_GROUP_INSTANCE_ID": f"{state.redis_prefix}-{p.name}",
            }
        )
    prefix = f"LFR_{p.service.upper()}_"
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "LFR_KAFKA_BOOTSTRAP_SERVERS": state.kafka_bootstrap_servers,
            "LFR_REDIS_URL": state.redis_url,
            "LFR_TOPIC_PREFIX": state.topic_prefix,
            "LFR_REDIS_PREFIX": state.redis_prefix,
            "LFR_MODELS_DIR": str(p.models_dir),
            "LFR_KEY_ENCRYPTION_KEY_FILE": str(p.root / "kek"),
            "LFR_AUTH_TOKENS": json.dumps(
                [{"token": t, "identity": f"local-{name}", "role": role_of(name)} for name, t in state.tokens.items()]
            ),
            "LFR_REPLICA_NAME": p.name,
            "LFR_STAGE_REPLICAS": str(p.replicas),
            # Any free port: the kernel chooses when it binds (no race), the stack finds it there.
            f"{prefix}HTTP_PORT": "0",
        }
    )
    env.update({f"{prefix}{k}": v for k, v in OWN.get(p.service, lambda _: {})(p).items()})
    env.update(extra_env)
    return env
