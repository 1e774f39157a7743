"""alert's settings, read from LFR_ALERT_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AlertSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LFR_ALERT_", extra="ignore")

    http_host: str = Field("127.0.0.1", description="Address of /metrics, /healthz, /readyz")
    http_port: int = Field(9105, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz")
    grpc_host: str = Field("127.0.0.1", description="Address of the AlertService (gRPC)")
    grpc_port: int = Field(50052, ge=0, le=65535, description="Port of the AlertService (gRPC)")
    grpc_tls_cert_file: Path | None = Field(None, description="PEM certificate: serve gRPC over TLS")
    grpc_tls_key_file: Path | None = Field(None, description="PEM private key of the certificate")
    window_s: float = Field(
        60.0,
        gt=0,
        description="Matches of one subject on one camera form one alert (one pass, even when "
        "the tracker split it) while each was captured within this many seconds of the pass's matches "
        "(capture time, however late it is processed); after a longer gap the next match raises a new alert",
    )
    max_match_age_s: float = Field(
        86400.0,
        gt=0,
        description="A match captured longer ago than this raises no alert (dead-lettered stale_match): a person "
        "seen a day ago is not in front of the van, and a replay older than the replay store's memory is refused",
    )
    sweep_interval_s: float = Field(
        10.0,
        gt=0,
        description="How often the alerts waiting for a decision are counted, and the equity monitor's "
        "false alerts per perceived group tested (metrics)",
    )
