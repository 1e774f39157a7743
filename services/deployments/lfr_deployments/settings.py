"""The deployments service's settings, read from LFR_DEPLOYMENTS_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DeploymentsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LFR_DEPLOYMENTS_", extra="ignore")

    http_host: str = Field("127.0.0.1", description="Address of /metrics, /healthz, /readyz")
    http_port: int = Field(9107, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz")
    grpc_host: str = Field("127.0.0.1", description="Address of the DeploymentService (gRPC)")
    grpc_port: int = Field(50051, ge=0, le=65535, description="Port of the DeploymentService (gRPC)")
    grpc_tls_cert_file: Path | None = Field(None, description="PEM certificate: serve gRPC over TLS")
    grpc_tls_key_file: Path | None = Field(None, description="PEM private key of the certificate")
    # --- its copy of the watchlists (the index itself: LFR_WATCHLIST_*, lfr_platform.settings)
    data_dir: Path = Field(
        Path("var/deployments"),
        description="Embedded engine: this service's copy of each watchlist (duplicate checks, counts), a shard "
        "folder per deployment",
    )
    # --- thresholds (see docs/evaluation.md)
    calibration_file: Path | None = Field(
        None,
        description="The model's calibration (its curves, written by `make calibrate`); unset: the one packaged "
        "for the model id (lfr_faces/calibration/<model>.json)",
    )
    # --- deployments
    watchlist_size_limit: int = Field(10_000, ge=1, description="Default limit of images per watchlist")
    watchlist_size_max: int = Field(200_000, ge=1, description="Largest limit a deployment may ask for")
    policy_file: Path | None = Field(
        None,
        description="The force's LFR policy: closed lists and limits every deployment is checked against (where, "
        "longest deployment, urgent ratification); validated at start. Unset: the shipped deploy/policy.yaml",
    )
    janitor_interval_s: float = Field(5.0, gt=0, description="How often expiry and unfinished deletions are checked")
    copy_wait_s: float = Field(
        10.0,
        ge=0,
        description="How long a close waits for each live match replica to report the deletion of its copy of the "
        "watchlist (the deletion report lists any that did not)",
    )
    # --- enrolment: the detector and the quality an enrolment photo must have (the model: LFR_MODEL_*)
    detector: str = Field("yunet", description="Detector plugin used on enrolment photos")
    detector_model: Path | None = Field(None, description="ONNX file; default: the models folder's YuNet")
    enrol_max_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="Larger enrolment files are rejected")
    enrol_max_pixels: int = Field(50_000_000, ge=4096, description="Images declaring more pixels are rejected")
    enrol_decode_max_side: int = Field(
        2000, ge=256, description="Photos with a longer side are reduced while decoded (bounds memory per photo)"
    )
    enrol_max_concurrent: int = Field(
        2,
        ge=1,
        description="Photos decoded and analysed at once (bounds CPU beside live matching); each is decoded in one "
        "of as many worker processes; more wait",
    )
    enrol_decode_memory_mb: int = Field(
        256,
        ge=64,
        description="Address space a photo's decoding may take in its worker process, over the worker's own "
        "(RLIMIT_AS, enforced by the OS); a photo that needs more is rejected image_too_complex",
    )
    enrol_min_face_px: float = Field(64, ge=16, description="Smallest face side accepted for enrolment")
    enrol_min_sharpness: float = Field(40, ge=0, description="Least sharpness accepted for enrolment")
    enrol_max_yaw: float = Field(0.6, gt=0, le=1, description="Largest head turn accepted (0 frontal, 1 profile)")
    enrol_min_score: float = Field(0.7, gt=0, lt=1, description="Detector confidence needed to count a face")
