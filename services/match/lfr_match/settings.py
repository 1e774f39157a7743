"""match's settings, read from LFR_MATCH_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MatchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LFR_MATCH_", extra="ignore")

    http_host: str = Field("127.0.0.1", description="Address of /metrics, /healthz, /readyz")
    http_port: int = Field(9104, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz")
    # --- its copy of the watchlists (the index itself: LFR_WATCHLIST_*, lfr_platform.settings)
    data_dir: Path = Field(
        Path("var/match"),
        description="Embedded engine: this replica's copy of the watchlists, rebuilt from the watchlist log at each "
        "start (emptied first)",
    )
    # --- its copy of the watchlists (docs/decisions/0011-watchlist-log.md)
    heartbeat_interval_s: float = Field(
        5.0, gt=0, description="How often this replica refreshes its heartbeat and drops copies of closed deployments"
    )
