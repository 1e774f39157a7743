"""console's settings, read from LFR_CONSOLE_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LFR_CONSOLE_", extra="ignore")

    http_host: str = Field("127.0.0.1", description="Address of /metrics, /healthz, /readyz")
    http_port: int = Field(9106, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz")
    web_host: str = Field("127.0.0.1", description="Address of the console's web page")
    web_port: int = Field(8080, ge=0, le=65535, description="Port of the console's web page")
    web_tls_cert_file: Path | None = Field(None, description="PEM certificate: serve the page over HTTPS")
    web_tls_key_file: Path | None = Field(None, description="PEM private key of the certificate")
    behind_tls_proxy: bool = Field(
        False,
        description="An HTTPS proxy (an Ingress) terminates TLS in front: cookies are marked Secure, and failed "
        "sign-ins are limited per client as the proxy reports it (the last X-Forwarded-For entry)",
    )
    alert_address: str = Field("127.0.0.1:50052", description="host:port of the AlertService (alert)")
    deployment_address: str = Field(
        "127.0.0.1:50051", description="host:port of the DeploymentService (the deployments service)"
    )
    grpc_tls_ca_file: Path | None = Field(None, description="CA certificate: reach both services over TLS")
    session_ttl_s: int = Field(8 * 3600, ge=60, description="A sign-in lasts at most this long (a shift)")
    session_idle_s: int = Field(30 * 60, ge=30, description="A session unused this long ends")
    session_key_file: Path | None = Field(
        None,
        description="File with 32 random bytes sealing the tokens held in sessions; unset: one per process "
        "(sessions then end when the console restarts and are not shared by replicas)",
    )
    refresh_s: float = Field(2.0, gt=0, description="How often the page's data sources are checked")
