"""Wires detect: frames.captured.v1 -> face detection -> faces.detected.v1."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from lfr_detect.handler import DetectHandler
from lfr_detect.settings import DetectSettings
from lfr_faces.detectors import Detector, build_detector
from lfr_faces.models import YUNET, model_path
from lfr_platform import metrics
from lfr_platform.registry import DeploymentRegistry, RedisKeys
from lfr_platform.service import ServiceShell
from lfr_platform.settings import PlatformSettings


def build(
    platform: PlatformSettings,
    settings: DetectSettings,
    *,
    detector: Detector | None = None,
    redis: aioredis.Redis | None = None,
) -> ServiceShell:
    if detector is None:
        path = settings.detector_model or model_path(platform.models_dir, YUNET)
        detector = build_detector(
            settings.detector,
            Path(path),
            input_width=settings.input_width,
            intra_op_threads=settings.intra_op_threads,
        )
    metrics.MODEL_INFO.labels("detector", detector.model_id, detector.provider).set(1)
    redis = redis or platform.redis_client()
    registry = DeploymentRegistry(redis, RedisKeys(platform.redis_prefix), platform.key_wrap())
    handler = DetectHandler(detector, registry, settings, platform.kafka_max_message_bytes)
    return ServiceShell.for_stage("detect", handler, platform, settings.http_host, settings.http_port, [redis.aclose])
