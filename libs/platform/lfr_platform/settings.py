"""Settings shared by every service, and the check that rejects misspelt LFR_* variables.

Each service has its own settings class with the prefix `LFR_<SERVICE>_`; what all of them need
(broker, Redis, topic and key namespaces, logging) lives here under the plain `LFR_` prefix, and so
do the blocks of values that several services must agree on, declared once: the watchlist index
(`LFR_WATCHLIST_*`: deployments writes it, match searches it) and the face model (`LFR_MODEL_*`: embed
computes vectors with it, deployments enrols with it). All are loaded once in the service's
`__main__` and passed down.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The services, each `services/<name>/` with its package `lfr_<name>`: the one list the settings check,
# the local stack and the docs generator read.
SERVICES = ("deployments", "ingest", "detect", "embed", "match", "alert", "console")
# Variables read by tools around the services (the Makefile, the tests, the CLI, the local stack), not by them.
_NON_SERVICE_VARIABLES = frozenset({"LFR_DATA_DIR"})
_NON_SERVICE_PREFIXES = ("LFR_TEST_", "LFR_CLI_", "LFR_STACK_")


class ToolSettings(BaseSettings):
    """What the tools around the services read (`lfr`, the local stack, the demo, the tests, the bench),
    never the services: where the DeploymentService and the AlertService are, the token, the local
    stack's folder and broker, and the face data."""

    model_config = SettingsConfigDict(env_prefix="LFR_CLI_", extra="ignore", hide_input_in_errors=True)

    address: str | None = Field(
        None, description="host:port of the DeploymentService for `lfr` (--address); unset: the local stack's"
    )
    alert_address: str | None = Field(
        None, description="host:port of the AlertService for `lfr alert` (--address); unset: the local stack's"
    )
    token: str | None = Field(
        None, repr=False, description="bearer token for `lfr` (--token shows in `ps`); unset: the local stack's"
    )
    stack_dir: Path = Field(Path("var/stack"), description="Folder of the local stack `make up` runs (its state)")
    broker: str = Field(
        "tansu",
        description="Kafka-protocol broker the local stack and the demo start: tansu or noida-db (docs/decisions/0009)",
    )
    data_dir: Path = Field(
        Path("../shared/data"),
        validation_alias="LFR_DATA_DIR",
        description="The shared face data the demo, the tests, the bench and the evaluation read (`LFR_DATA_DIR`; "
        "the Makefile finds it beside the repository): read-only, never copied into it",
    )


class WatchlistIndexSettings(BaseSettings):
    """Where the watchlists are kept: read by the deployments service (which writes them) and match
    (which searches them), so that both always name the same index."""

    model_config = SettingsConfigDict(env_prefix="LFR_WATCHLIST_", extra="ignore", hide_input_in_errors=True)

    qdrant_url: str | None = Field(
        None,
        description="Qdrant server holding every watchlist (match replicas share it); unset: the embedded engine "
        "(qdrant-edge), the deployments service's copy and each match replica's copy built from the watchlist log",
    )
    qdrant_api_key: str | None = Field(None, repr=False, description="API key of the Qdrant server, if it needs one")
    collection_prefix: str = Field(
        "lfr-",
        description="Qdrant server collections are named <prefix><deployment>; installations sharing a server "
        "need different prefixes (the janitor drops collections of no open deployment under its prefix)",
    )
    hnsw_ef: int = Field(
        256, ge=8, description="HNSW search breadth; 256 made every match decision equal exact search at 200k"
    )


class ModelSettings(BaseSettings):
    """The face recognition model: read by embed (which computes the vectors searched) and the
    deployments service (which enrols with it), so that both always run the same one."""

    model_config = SettingsConfigDict(env_prefix="LFR_MODEL_", extra="ignore", protected_namespaces=())

    embedder: str = Field("sface", description="Preprocessing preset of the model (known: sface, arcface)")
    file: Path | None = Field(None, description="ONNX file; default: the models folder's SFace")
    id: str | None = Field(None, description="Id written with every vector; default: the file's stem")


class PlatformSettings(BaseSettings):
    """Read from `LFR_<FIELD>` variables, e.g. LFR_KAFKA_BOOTSTRAP_SERVERS."""

    # Errors name the variable, never its value: some values are secrets (auth_tokens).
    model_config = SettingsConfigDict(env_prefix="LFR_", extra="ignore", hide_input_in_errors=True)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated")
    kafka_session_timeout_ms: int = Field(
        10_000, ge=1000, description="Consumer group session timeout; real Kafka refuses < 6000 by default"
    )
    kafka_heartbeat_interval_ms: int = Field(3_000, ge=100, description="Consumer group heartbeat interval")
    kafka_group_instance_id: str | None = Field(
        None,
        description="Static group membership (KIP-345): a stable name per replica (a StatefulSet pod's name) lets "
        "a restarted replica take its partitions back at once, without a rebalance; unset: dynamic membership",
    )
    kafka_max_message_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Largest record a producer may send (a 1080p JPEG is up to ~2 MB)",
    )
    kafka_fetch_max_wait_ms: int = Field(
        50,
        ge=1,
        le=5_000,
        description="Longest a fetch waits at the broker for new records: on tansu it is the latency each "
        "stage adds (it answers when the wait expires); 500, the client's default, doubled capture-to-alert",
    )
    topic_prefix: str = Field("", description="Prefix of every topic name (one namespace per installation)")
    topic_partitions: int = Field(3, ge=1, description="Partitions of the topics the system creates")
    topic_replication_factor: int = Field(1, ge=1, description="Replication factor of created topics")
    stage_replicas: int = Field(
        1,
        ge=1,
        description="Replicas of this stage the installation runs (at most, when autoscaled): a stage refuses to "
        "start when its input topic has fewer partitions, as the replicas beyond them would sit idle",
    )
    replica_name: str = Field(
        "", description="This process's name among its stage's replicas; unset: the host name (a pod's name)"
    )
    biometric_retention_s: int = Field(
        60, ge=1, description="Retention of frames, faces and embeddings of people not matched"
    )
    operational_retention_s: int = Field(7 * 24 * 3600, ge=60, description="Retention of matches and alerts")
    audit_retention_s: int = Field(-1, description="Retention of the audit trail; -1 keeps it forever")
    watchlist_retention_s: int = Field(
        8 * 24 * 3600,
        ge=3600,
        description="Retention of the watchlist log (sealed entries, unreadable once their deployment is closed); "
        "the deployments service refuses to start unless it exceeds the longest deployment it accepts",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for short-lived state")
    redis_prefix: str = Field("lfr", description="Prefix of every Redis key (one namespace per installation)")
    log_level: str = Field("INFO", description="Python log level")
    log_format: Literal["text", "json"] = Field("text", description="json for log shippers, text for people")
    models_dir: str = Field("models", description="Folder with the ONNX models fetched by `make models`")
    key_encryption_key_file: Path | None = Field(
        None,
        description="File of 32 random bytes wrapping every deployment's data key in Redis (a mounted Secret; "
        "a KMS can write it); required by every service that reads data keys",
    )
    auth_tokens: str = Field(
        "[]",
        repr=False,
        description="JSON list of bearer-token grants {token, identity, role, deployments} of the APIs",
    )
    auth_tokens_file: Path | None = Field(
        None, description="JSON file with the same list (a mounted Kubernetes secret); re-read when it changes"
    )
    # The shared blocks, each read from its own variables (LFR_WATCHLIST_*, LFR_MODEL_*).
    watchlist: WatchlistIndexSettings = Field(default_factory=WatchlistIndexSettings, exclude=True)
    model: ModelSettings = Field(default_factory=ModelSettings, exclude=True)

    @field_validator("auth_tokens")
    @classmethod
    def _valid_grants(cls, value: str) -> str:
        from lfr_platform.auth import parse_grants

        parse_grants(value)  # raises ValueError naming the bad grant and field, never the token
        return value

    def key_wrap(self):
        """The key-encryption key, or ValueError saying what is missing."""
        from lfr_platform.sealing import KeyWrap

        if self.key_encryption_key_file is None:
            raise ValueError(
                "LFR_KEY_ENCRYPTION_KEY_FILE is not set: data keys are stored in Redis wrapped by a key that "
                "Redis does not hold (32 random bytes: head -c 32 /dev/urandom > kek; docs/deletion.md)"
            )
        return KeyWrap.from_file(self.key_encryption_key_file)

    def redis_client(self):
        """The service's Redis client. A command that meets a broken connection (Redis restarted, a
        pooled socket gone stale) is retried on a new one, 3 times with a backoff capped at 1 s, so
        one restart of Redis costs a caller at most a short wait, never an error; a Redis that stays
        down still fails the call (the gRPC APIs answer UNAVAILABLE)."""
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        return aioredis.from_url(
            self.redis_url,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), retries=3),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            health_check_interval=30,
        )

    def token_book(self):
        """The bearer tokens of the APIs (DeploymentService, AlertService, console)."""
        from lfr_platform.auth import TokenBook, parse_grants

        return TokenBook(parse_grants(self.auth_tokens), self.auth_tokens_file)


def unknown_variables(
    service: str, settings_classes: Iterable[type[BaseSettings]], environ: Mapping[str, str] | None = None
) -> list[str]:
    """LFR_* variables that none of `settings_classes` reads and that belong to no other service."""
    environ = os.environ if environ is None else environ
    known: set[str] = set(_NON_SERVICE_VARIABLES)
    for cls in (*settings_classes, *SHARED_BLOCKS):
        prefix = cls.model_config.get("env_prefix", "")
        known.update(f"{prefix}{name}".upper() for name in cls.model_fields)
    others = tuple(f"LFR_{s.upper()}_" for s in SERVICES if s != service) + _NON_SERVICE_PREFIXES
    return sorted(
        name for name in environ if name.startswith("LFR_") and name not in known and not name.startswith(others)
    )


# Every service knows the shared blocks' variables, used or not: an environment the services share
# may set them (a misspelt one is still refused, by every service).
SHARED_BLOCKS: tuple[type[BaseSettings], ...] = (WatchlistIndexSettings, ModelSettings)


class UnknownSettingError(ValueError):
    pass


def reject_unknown_variables(service: str, *settings_classes: type[BaseSettings]) -> None:
    unknown = unknown_variables(service, settings_classes)
    if unknown:
        raise UnknownSettingError(
            f"unknown setting(s) {', '.join(unknown)} for {service}: check the spelling against "
            f"services/{service}/README.md"
        )
