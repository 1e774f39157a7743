"""ingest's settings, read from LFR_INGEST_* variables."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CameraSettings(BaseModel):
    """One camera of this van."""

    camera_id: str = Field(min_length=1, description="Camera id, unique in the van")
    deployment_id: str = Field(min_length=1, description="Deployment this camera streams for")
    source: str = Field(
        min_length=1,
        description="A video file path, or a stream URL OpenCV reads (rtsp://, http(s)://, udp://)",
    )
    fps: float = Field(5.0, gt=0, le=60, description="Frames per second sampled and published")
    loop: bool = Field(False, description="Files only: start again at the end instead of finishing")
    paced: bool = Field(True, description="Files only: play at the file's frame rate, as a live camera would")


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LFR_INGEST_", extra="ignore")

    http_host: str = Field("127.0.0.1", description="Address of /metrics, /healthz, /readyz")
    http_port: int = Field(9101, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz")
    van_id: str = Field("van-1", min_length=1, description="The van this process runs in")
    cameras: list[CameraSettings] = Field(
        default_factory=list, description="JSON list of cameras (see CameraSettings), or use cameras_file"
    )
    cameras_file: Path | None = Field(None, description="JSON file with the same list as `cameras`")
    queue_frames: int = Field(
        4,
        ge=1,
        description="Frames held per camera while the broker is slow; beyond it the oldest is dropped",
    )
    max_in_flight: int = Field(8, ge=1, description="Frames sent to the broker and not yet acknowledged")
    max_width: int = Field(1920, ge=0, description="Wider frames are scaled down to this width; 0 = never")
    reconnect_initial_s: float = Field(0.5, gt=0, description="First wait before reopening a failed source")
    reconnect_max_s: float = Field(30.0, gt=0, description="Longest wait between attempts")

    @field_validator("cameras", mode="before")
    @classmethod
    def _parse_json(cls, value):
        return json.loads(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _load_file(self):
        if self.cameras_file is not None:
            data = json.loads(self.cameras_file.read_text())
            self.cameras = [*self.cameras, *(CameraSettings.model_validate(c) for c in data)]
        ids = [c.camera_id for c in self.cameras]
        if len(ids) != len(set(ids)):
            raise ValueError(f"camera ids must be unique in a van: {ids}")
        return self
