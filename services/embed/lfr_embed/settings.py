"""embed's settings, read from LFR_EMBED_* variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EmbedSettings(BaseSettings):
    """embed's own settings; the model it runs is the shared LFR_MODEL_* block (lfr_platform.settings)."""

    model_config = SettingsConfigDict(env_prefix="LFR_EMBED_", extra="ignore")

    http_host: str = Field("127.0.0.1", description="Address of /metrics, /healthz, /readyz")
    http_port: int = Field(9103, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz")
    max_batch: int = Field(16, ge=1, description="Most faces per model run")
    intra_op_threads: int = Field(1, ge=1, description="onnxruntime threads; 1 is fastest on small machines")
