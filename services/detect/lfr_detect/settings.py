"""detect's settings, read from LFR_DETECT_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DetectSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LFR_DETECT_", extra="ignore")

    http_host: str = Field("127.0.0.1", description="Address of /metrics, /healthz, /readyz")
    http_port: int = Field(9102, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz")
    detector: str = Field("yunet", description="Detector plugin (known: yunet)")
    detector_model: Path | None = Field(None, description="ONNX file; default: the models folder's YuNet")
    input_width: int = Field(640, ge=0, description="Frames are scaled to this width for detection; 0 = native")
    min_score: float = Field(0.6, gt=0, lt=1, description="Detector confidence below which a face is ignored")
    min_face_px: float = Field(40, ge=0, description="Faces whose shorter side is smaller are dropped (face_too_small)")
    min_sharpness: float = Field(
        10, ge=0, description="Laplacian variance at 64x64 below which a face is dropped (too_blurred)"
    )
    max_frame_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Larger frames are dead-lettered")
    max_frame_pixels: int = Field(
        7680 * 4320, ge=64 * 64, description="Frames of more pixels (by their header) are dead-lettered"
    )
    intra_op_threads: int = Field(1, ge=1, description="onnxruntime threads; 1 is fastest on small machines")
    best_shots: bool = Field(
        True, description="Embed a track's shots as the shot policy chooses; false embeds every face (to compare)"
    )
    shot_interval_s: float = Field(
        0.8,
        gt=0,
        description="After a track's first face, one face per this many seconds of capture time is embedded: the "
        "knee of per-pass recall against embeddings (docs/decisions/0012)",
    )
    shot_budget: int = Field(20, ge=1, description="Most faces of one track embedded (a person standing in view)")
    scene_images: bool = Field(
        True,
        description="Compose each embedded shot's scene (head to waist, every other face covered: docs/decisions/0020) "
        "for the officer if it alerts; false: none, and alerts say so",
    )
