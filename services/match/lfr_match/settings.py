"""match's settings, read from LFR_MATCH_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MatchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LFR_MATCH_", extra="ignore")

    http_host: str = Field("127.0.0.1", description="Address of /metrics, /healthz, /readyz")
    http_port: int = Field(9104, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz")
    # --- watchlist index
    qdrant_url: str | None = Field(
        None,
        description="Qdrant server URL (the deployments service's, shared); unset: an embedded copy under data_dir, "
        "built from the watchlist log",
    )
    qdrant_api_key: str | None = Field(None, description="API key of the Qdrant server, if it needs one")
    collection_prefix: str = Field(
        "lfr-",
        description="Qdrant server collections are named <prefix><deployment>; installations sharing a server "
        "need different prefixes (the janitor drops collections of no open deployment under its prefix)",
    )
    data_dir: Path = Field(
        Path("var/match"),
        description="Embedded engine: this replica's copy of the watchlists, rebuilt from the watchlist log at each "
        "start (emptied first)",
    )
    top_k: int = Field(5, ge=1, le=100, description="Candidates searched per probe face")
    exact_recheck_margin: float = Field(
        0.05, ge=0, lt=1, description="A best score this close below the threshold is re-checked by exact search"
    )
    fusion: str = Field(
        "mean",
        pattern="^(mean|best)$",
        description="How a track's shots make its template: mean (quality-weighted) or best (the best shot)",
    )
    track_idle_s: float = Field(30.0, gt=0, description="A track's template is forgotten after this long unused")
    hnsw_ef: int = Field(
        256, ge=8, description="HNSW search breadth; 256 made every match decision equal exact search at 200k"
    )
    # --- its copy of the watchlists (docs/decisions/0011-watchlist-log.md)
    heartbeat_interval_s: float = Field(
        5.0, gt=0, description="How often this replica refreshes its heartbeat and drops copies of closed deployments"
    )
