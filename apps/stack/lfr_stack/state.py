"""stack.json: what a client needs to use a running stack (addresses, tokens), and what it runs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class StackState:
    root: str
    kafka_bootstrap_servers: str
    redis_url: str
    topic_prefix: str
    redis_prefix: str
    grpc_address: str  # the DeploymentService (deployments)
    broker: str = ""  # the local broker started (noida-db or tansu); "" when an external one is used
    alert_grpc_address: str = ""  # the AlertService (alert, its first replica)
    console_url: str = ""  # the control room's web page (console)
    # One bearer token per role (manager, supervisor, officer, viewer); identities "local-<role>".
    tokens: dict[str, str] = field(default_factory=dict)
    # The processes the supervisor holds (broker, redis, services and their replicas), in start order.
    processes: list[str] = field(default_factory=list)
    # Ports that must stay the same across a process's restarts (its clients hold them): gRPC APIs,
    # the console's page. A process's HTTP port (metrics, health) is wherever it bound port 0.
    fixed_ports: dict[str, list[int]] = field(default_factory=dict)
    supervisor_pid: int = 0
    # Replicas of each scalable stage the stack was asked for (what LFR_STAGE_REPLICAS says).
    planned_replicas: int = 1

    def save(self) -> None:
        path = Path(self.root) / "stack.json"
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)  # it holds the tokens

    @classmethod
    def load(cls, root: Path) -> StackState | None:
        path = Path(root) / "stack.json"
        if not path.is_file():
            return None
        # A file written by another version: unknown fields are ignored (`make down` then finds the
        # stack's processes by their marker, lfr_stack.processes).
        data = json.loads(path.read_text())
        try:
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except TypeError:
            return None
