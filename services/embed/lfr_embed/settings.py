"""embed's settings, read from LFR_EMBED_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EmbedSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LFR_EMBED_", extra="ignore")

    http_host: str = Field("127.0.0.1", description="Address of /metrics, /healthz, /readyz")
    http_port: int = Field(9103, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz")
    embedder: str = Field("sface", description="Preprocessing preset of the model (known: sface, arcface)")
    embedder_model: Path | None = Field(None, description="ONNX file; default: the models folder's SFace")
    model_id: str | None = Field(None, description="Id written into every message; default: the file's stem")
    max_batch: int = Field(16, ge=1, description="Most faces per model run")
    intra_op_threads: int = Field(1, ge=1, description="onnxruntime threads; 1 is fastest on small machines")
