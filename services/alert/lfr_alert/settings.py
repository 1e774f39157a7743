"""alert's settings, read from LFR_ALERT_* variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AlertSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LFR_ALERT_", extra="ignore")

    http_host: str = Field("127.0.0.1", description="Address of /metrics, /healthz, /readyz")
    http_port: int = Field(9105, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz")
    window_s: float = Field(
        60.0,
        gt=0,
        description="Matches of one subject on one camera within this many seconds of the "
        "first form one alert; the next match after it raises a new one",
    )
