"""Frames in, faces out: detect's handler (the gate, the tracker, the shot policy, the scenes)."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from lfr.v1 import frames_pb2
from lfr_contracts import FACES_DETECTED, FRAMES_CAPTURED, camera_key
from lfr_detect.detection import DISABLED, FrameFaces, detect_faces, frame_scenes
from lfr_detect.settings import DetectSettings
from lfr_detect.wire import faces_detected
from lfr_faces import images, scenes
from lfr_faces.detectors import Detector
from lfr_faces.quality import QualityPolicy, shot_quality
from lfr_faces.tracking import ShotPolicy, Tracker, pass_flags
from lfr_platform import metrics
from lfr_platform.registry import DeploymentRegistry
from lfr_platform.skeleton import Admitted, DeploymentStage
from lfr_platform.stage import Outcome, Output, Rejected


class DetectHandler(DeploymentStage[frames_pb2.FrameCaptured]):
    input = FRAMES_CAPTURED

    def __init__(
        self,
        detector: Detector,
        registry: DeploymentRegistry,
        settings: DetectSettings,
        max_record_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.detector = detector
        self.registry = registry
        self.settings = settings
        # A frame's scenes take at most half its record (LFR_KAFKA_MAX_MESSAGE_BYTES): crops and the rest
        # need the other half (at most about 20 KiB a face).
        self.scene_room_bytes = max_record_bytes // 2
        self.policy = QualityPolicy(min_size_px=settings.min_face_px, min_sharpness=settings.min_sharpness)
        self.tracker = Tracker()
        self.shots = ShotPolicy(settings.shot_interval_s, settings.shot_budget)

    async def one(self, record: Admitted[frames_pb2.FrameCaptured]) -> Outcome:
        frame = record.message
        labels = metrics.camera_labels(frame.camera)
        jpeg = record.open(frame.image)
        loop = asyncio.get_running_loop()
        try:
            image, faces = await loop.run_in_executor(None, self._detect, jpeg)
        except images.ImageRejected as exc:
            return Rejected(f"{exc.reason}_frame", exc.detail)
        metrics.FRAMES_PROCESSED.labels(**labels).inc()
        metrics.FACES_DETECTED_TOTAL.labels(**labels).inc(faces.found)
        for reason, count in faces.rejected.items():
            metrics.FACES_REJECTED.labels(**labels, reason=reason).inc(count)
        chosen = self._best_shots(frame, faces, labels)
        if not chosen:
            return []
        crops = [face for face, _, _ in chosen]
        if self.settings.scene_images:
            # Composed from the frame decoded above, only for the shots sent on (those that may alert).
            composed = await loop.run_in_executor(None, frame_scenes, image, faces, crops, self.scene_room_bytes)
        else:
            composed = [scenes.NoScene(DISABLED)] * len(crops)
        for scene in composed:
            metrics.SCENE_IMAGES.labels(scene.reason if isinstance(scene, scenes.NoScene) else "composed").inc()
        message = faces_detected(frame, self.detector.model_id, chosen, record.seal, composed)
        return [Output(FACES_DETECTED, camera_key(frame.camera), message)]

    def _best_shots(self, frame: frames_pb2.FrameCaptured, faces: FrameFaces, labels: dict):
        """Each face's track; the faces the shot policy embeds, with their track and quality. The others
        are counted by reason."""
        captured = frame.captured_at.ToNanoseconds() / 1e9
        assignment = self.tracker.assign(camera_key(frame.camera).decode(), [f.box for f in faces.accepted], captured)
        if assignment.out_of_order:
            metrics.FRAMES_OUT_OF_ORDER.labels(**labels).inc()
        metrics.TRACKS_STARTED.labels(**labels).inc(assignment.started)
        for track in assignment.ended:
            metrics.TRACK_SHOTS.observe(track.shots)
            for flag in pass_flags(track):
                metrics.PASSES_FLAGGED.labels(flag).inc()
        chosen = []
        for face, track in zip(faces.accepted, assignment.tracks, strict=True):
            quality = shot_quality(face.quality, face.score)
            reason = self.shots.choose(track, quality, captured, face.quality.yaw)
            if not self.settings.best_shots:
                reason = None  # every face, to compare
            if reason:
                metrics.FACES_NOT_EMBEDDED.labels(**labels, reason=reason).inc()
            else:
                chosen.append((face, track.track_id, quality))
        return chosen

    def _detect(self, jpeg: bytes) -> tuple[np.ndarray, FrameFaces]:
        """The decoded frame (scenes are composed from it) and its faces."""
        image = images.decode_jpeg(
            jpeg, max_bytes=self.settings.max_frame_bytes, max_pixels=self.settings.max_frame_pixels
        )
        started = time.perf_counter()
        faces = detect_faces(self.detector, image, self.policy, self.settings.min_score)
        metrics.INFERENCE_SECONDS.labels(self.detector.model_id).observe(time.perf_counter() - started)
        return image, faces
