"""Wires embed: faces.detected.v1 -> alignment + face recognition model -> faces.embedded.v1."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from lfr_embed.handler import EmbedHandler
from lfr_embed.settings import EmbedSettings
from lfr_faces.embedders import Embedder, build_embedder
from lfr_faces.models import SFACE, model_path
from lfr_platform import metrics
from lfr_platform.registry import DeploymentRegistry, RedisKeys
from lfr_platform.replicas import Replicas, replica_name
from lfr_platform.service import ServiceShell
from lfr_platform.settings import PlatformSettings


def build(
    platform: PlatformSettings,
    settings: EmbedSettings,
    *,
    embedder: Embedder | None = None,
    redis: aioredis.Redis | None = None,
) -> ServiceShell:
    if embedder is None:
        path = platform.model.file or model_path(platform.models_dir, SFACE)
        embedder = build_embedder(
            platform.model.embedder,
            Path(path),
            model_id=platform.model.id,
            max_batch=settings.max_batch,
            intra_op_threads=settings.intra_op_threads,
        )
    metrics.MODEL_INFO.labels("embedder", embedder.model_id, embedder.provider).set(1)
    redis = redis or platform.redis_client()
    keys = RedisKeys(platform.redis_prefix)
    registry = DeploymentRegistry(redis, keys, platform.key_wrap())
    handler = EmbedHandler(embedder, registry)
    # Every replica must write vectors of one model: a replica of another is refused at start.
    replicas = Replicas(redis, keys, "embed", replica_name(platform.replica_name), model_id=embedder.model_id)
    return ServiceShell.for_stage(
        "embed", handler, platform, settings.http_host, settings.http_port, [redis.aclose], replicas=replicas
    )
