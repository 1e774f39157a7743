"""Wires the deployments service: the DeploymentService (gRPC), the janitor and the watchlist log's
writer, over this service's copy of the watchlists and one Redis."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from lfr.v1 import deployments_pb2, deployments_pb2_grpc
from lfr_deployments import prediction
from lfr_deployments.closing import Closer
from lfr_deployments.decoding import DecoderPool
from lfr_deployments.janitor import Janitor
from lfr_deployments.lifecycle import ThresholdPolicy
from lfr_deployments.policy import SHIPPED, DeploymentPolicy, PolicyError
from lfr_deployments.publishing import WatchlistLog
from lfr_deployments.service import DeploymentService
from lfr_deployments.settings import DeploymentsSettings
from lfr_deployments.store import DeploymentStore
from lfr_faces import calibration
from lfr_faces.detectors import Detector, build_detector
from lfr_faces.embedders import Embedder, build_embedder
from lfr_faces.enrolment import Enroller, EnrolmentPolicy
from lfr_faces.models import SFACE, YUNET, model_path
from lfr_platform import metrics
from lfr_platform.audit import AuditLog
from lfr_platform.audit_roots import DaySealer, root_signing_key
from lfr_platform.auth import Authenticator
from lfr_platform.clock import Clock, system
from lfr_platform.http import Health, HttpServer
from lfr_platform.kafka import new_producer, start_with_retry
from lfr_platform.outbox import Outbox
from lfr_platform.registry import RedisKeys
from lfr_platform.rpc import GrpcServer
from lfr_platform.runtime import StartRefused
from lfr_platform.service import ServiceShell
from lfr_platform.settings import PlatformSettings
from lfr_watchlist import WatchlistIndex, open_index

log = logging.getLogger(__name__)

SERVICE_NAME = deployments_pb2.DESCRIPTOR.services_by_name["DeploymentService"].full_name


# An enrolment photo this similar to one already enrolled is the same photo (re-encoded, cropped): two
# photos of one person taken on different occasions score well under it (docs/evaluation.md).
DUPLICATE_SIMILARITY = 0.95
# Photos of one subject scoring below the threshold at which 1 in 100 pairs of different people score
# are refused as two people (subject_mismatch): on LFW, 98.7% of photos of one person taken on other
# occasions score above it (0.30 for SFace; docs/evaluation.md).
SUBJECT_MISMATCH_FMR = 0.01


def threshold_policy(settings: DeploymentsSettings, model_id: str, budget: float) -> ThresholdPolicy:
    """The model's calibration (its curves) with the force's false-alert budget. A model without one, or
    with one that lacks a curve, stops the service: the error says which command writes it."""
    calib = calibration.load(model_id, settings.calibration_file)
    if calib.model_id != model_id:
        raise calibration.CalibrationIncomplete(
            f"calibration file {settings.calibration_file} is for model {calib.model_id!r}, not {model_id!r}"
        )
    return ThresholdPolicy(calib, budget, calib.lowest_threshold_at_fmr(SUBJECT_MISMATCH_FMR))


class ControlPlane:
    """The gRPC server, the janitor, the outbox and the watchlist log, started once the producer is up."""

    def __init__(
        self,
        platform: PlatformSettings,
        server: GrpcServer,
        service: DeploymentService,
        outbox: Outbox,
        watchlist_log: WatchlistLog,
        janitor: Janitor,
        health: Health,
    ) -> None:
        self.platform = platform
        self.health = health
        self.server = server
        self.service = service
        self.outbox = outbox
        self.watchlist_log = watchlist_log
        self.janitor = janitor

    @property
    def port(self) -> int:
        return self.server.port

    async def run(self) -> None:
        producer = await start_with_retry(lambda: new_producer(self.platform), "deployments producer")
        self.outbox.producer = producer
        self.watchlist_log.producer = producer
        await self.server.start()
        self.health.set("kafka", True)
        try:
            await self.janitor.run()
        finally:
            await self.server.stop()
            try:  # bounded, as the stage's clients: a stop never hangs the process
                async with asyncio.timeout(5):
                    await producer.stop()
            except TimeoutError:
                log.warning("deployments producer took over 5 s to stop; left behind")


@dataclass
class DeploymentsShell(ServiceShell):
    """The deployments service's shell, with its control plane reachable (gRPC port, service, index)."""

    control: ControlPlane | None = None


def build(
    platform: PlatformSettings,
    settings: DeploymentsSettings,
    *,
    detector: Detector | None = None,
    embedder: Embedder | None = None,
    index: WatchlistIndex | None = None,
    redis: aioredis.Redis | None = None,
    clock: Clock = system,
) -> DeploymentsShell:
    try:
        rules = DeploymentPolicy.load(settings.policy_file or SHIPPED)
        rules.check_watchlist_log(platform.watchlist_retention_s, settings.policy_file or SHIPPED)
    except PolicyError as exc:
        raise StartRefused(str(exc)) from exc
    if detector is None:
        detector = build_detector(
            settings.detector,
            Path(settings.detector_model or model_path(platform.models_dir, YUNET)),
            # Photos up to 1280 px wide are searched at their own size (small faces are found);
            # wider ones are scaled to 1280 first: YuNet's anchors miss faces over ~600 px, which a
            # custody photo of several megapixels has.
            input_width=1280,
        )
    if embedder is None:
        embedder = build_embedder(
            platform.model.embedder,
            Path(platform.model.file or model_path(platform.models_dir, SFACE)),
            model_id=platform.model.id,
        )
    metrics.MODEL_INFO.labels("enrolment-embedder", embedder.model_id, embedder.provider).set(1)
    try:
        policy = threshold_policy(settings, embedder.model_id, rules.false_alert_budget)
    except (calibration.CalibrationMissing, calibration.CalibrationIncomplete) as exc:
        raise StartRefused(str(exc)) from exc
    log.info(
        "thresholds for %s derived from a budget of %s faces (curves %s, equitability floor %.3f, model %.3f-%.3f)",
        policy.model_id,
        prediction.one_in(policy.budget),
        policy.calibration.version,
        policy.calibration.equitability_floor,
        policy.calibration.model_min,
        policy.calibration.model_max,
    )
    index = index or open_index(platform.watchlist, settings.data_dir)
    redis = redis or platform.redis_client()
    keys = RedisKeys(platform.redis_prefix)
    key_wrap = platform.key_wrap()
    store = DeploymentStore(redis, keys, key_wrap, platform.operational_retention_s)
    outbox = Outbox(redis, keys.outbox())
    audit = AuditLog(outbox, platform.topic_prefix, writer_key=root_signing_key(key_wrap))
    sealer = DaySealer(audit, root_signing_key(key_wrap))
    log.info("audit daily roots are signed with Ed25519 key %s", sealer.public_key.hex())
    watchlist_log = WatchlistLog(redis, keys, platform.topic_prefix)
    closer = Closer(
        store,
        index,
        audit,
        watchlist_log,
        settings.copy_wait_s,
        clock,
        manifest_retention_s=rules.manifest_retention_days * 86400,
    )
    enroller = Enroller(
        detector,
        embedder,
        EnrolmentPolicy(
            max_bytes=settings.enrol_max_bytes,
            max_pixels=settings.enrol_max_pixels,
            decode_max_side=settings.enrol_decode_max_side,
            min_face_px=settings.enrol_min_face_px,
            min_sharpness=settings.enrol_min_sharpness,
            max_yaw=settings.enrol_max_yaw,
            min_score=settings.enrol_min_score,
        ),
    )
    decoder = DecoderPool(
        settings.enrol_max_concurrent, settings.enrol_decode_memory_mb * 2**20, settings.enrol_decode_max_side
    )
    service = DeploymentService(
        store=store,
        index=index,
        watchlist_log=watchlist_log,
        enroller=enroller,
        decoder=decoder,
        closer=closer,
        audit=audit,
        auth=Authenticator(platform.token_book(), audit),
        policy=policy,
        default_size_limit=settings.watchlist_size_limit,
        max_size_limit=settings.watchlist_size_max,
        duplicate_similarity=DUPLICATE_SIMILARITY,
        rules=rules,
        max_concurrent_enrolments=settings.enrol_max_concurrent,
        clock=clock,
    )
    health_state = Health("kafka", "topics", "grpc")
    server = GrpcServer(
        settings.grpc_host,
        settings.grpc_port,
        health_state=health_state,
        tls_cert_file=settings.grpc_tls_cert_file,
        tls_key_file=settings.grpc_tls_key_file,
        max_receive_bytes=settings.enrol_max_bytes + 65536,
    )
    server.add(service, deployments_pb2_grpc.add_DeploymentServiceServicer_to_server, SERVICE_NAME)
    control = ControlPlane(
        platform,
        server,
        service,
        outbox,
        watchlist_log,
        Janitor(
            store,
            index,
            closer,
            audit,
            outbox,
            settings.janitor_interval_s,
            clock,
            roots=sealer,
            watchlist_log=watchlist_log,
        ),
        health_state,
    )

    async def close_index() -> None:
        index.close()

    return DeploymentsShell(
        name="deployments",
        platform=platform,
        health=health_state,
        http=HttpServer(health_state, settings.http_host, settings.http_port),
        tasks=[control.run],
        closers=[redis.aclose, close_index, decoder.close],
        control=control,
    )
