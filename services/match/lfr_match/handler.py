"""The match stage: faces.embedded.v1 -> watchlist search -> matches.found.v1.

Faces that do not match are counted (faces scanned) and dropped at once: nothing of them is kept.
"""

from __future__ import annotations

import asyncio
import time

from lfr.v1 import embeddings_pb2
from lfr_contracts import FACES_EMBEDDED, MATCHES_FOUND, camera_key
from lfr_match import wire
from lfr_match.tracks import TrackTemplates
from lfr_platform import metrics, sealing
from lfr_platform.registry import DeploymentRegistry, DeploymentStats
from lfr_platform.skeleton import Admitted, DeploymentStage
from lfr_platform.stage import Outcome, Output, Rejected, Skipped
from lfr_watchlist import CollectionMissing, WatchlistIndex, search_for_decision, with_runner_up
from lfr_watchlist.decision import decide


class MatchHandler(DeploymentStage[embeddings_pb2.FacesEmbedded]):
    input = FACES_EMBEDDED

    def __init__(
        self,
        index: WatchlistIndex,
        registry: DeploymentRegistry,
        top_k: int,
        recheck_margin: float,
        templates: TrackTemplates | None = None,
    ) -> None:
        self.index = index
        self.registry = registry
        self.templates = templates or TrackTemplates()
        # The deployment report's denominator, kept with the deployment (metrics reset on restart).
        self.stats = DeploymentStats(registry.client, registry.keys)
        self.top_k = top_k
        self.recheck_margin = recheck_margin

    def refused(self, message: embeddings_pb2.FacesEmbedded, outcome: Rejected | Skipped) -> None:
        if isinstance(outcome, Skipped) and outcome.reason == "deployment_closed":
            self.templates.drop(message.camera.deployment_id)  # nothing of its faces stays in memory

    async def one(self, record: Admitted[embeddings_pb2.FacesEmbedded]) -> Outcome:
        message, deployment = record.message, record.deployment
        if message.model_id != deployment.model_id:
            return Rejected(
                "model_mismatch",
                f"vectors of {message.model_id!r}; the watchlist was enrolled with {deployment.model_id!r}",
            )
        deployment_id = message.camera.deployment_id
        try:
            probes = [wire.vector(record.open(face.embedding), message.dimension) for face in message.faces]
        except sealing.SealError:
            raise  # the skeleton's: unsealable
        except ValueError as exc:
            return Rejected("invalid_vector", str(exc))
        # A face of a track is decided on its track's template: the shots so far, fused. Templates are
        # forgotten by capture time (as tracks end), never by how late their records are processed.
        camera = camera_key(message.camera).decode()
        captured = message.captured_at.ToNanoseconds() / 1e9
        shots = [1] * len(probes)
        for i, face in enumerate(message.faces):
            if face.track_id:
                probes[i], shots[i] = self.templates.add(
                    deployment_id, camera, face.track_id, probes[i], face.shot_quality, now=captured
                )
        try:
            searches = await asyncio.get_running_loop().run_in_executor(
                None, self._search, deployment_id, probes, deployment.threshold
            )
        except CollectionMissing:
            # Open (admitted above) but not in this replica's copy: nothing enrolled yet, or its first
            # change not read yet (the copy follows the log within milliseconds). Nothing to match.
            searches = [[] for _ in probes]
        labels = metrics.camera_labels(message.camera)
        metrics.FACES_SCANNED.labels(**labels).inc(len(probes))
        await self.stats.add(deployment_id, message.camera.van_id, faces_scanned=len(probes))
        outputs = []
        for face, hits, fused in zip(message.faces, searches, shots, strict=True):
            decision = decide(hits, deployment.threshold)
            if not decision.matched:
                continue
            # The probe face goes on as detect sealed it: nothing of a face is on the bus in clear.
            match = wire.match_found(message, face, decision, deployment.threshold, face.crop, fused)
            record.sign(match, "match")
            outputs.append(Output(MATCHES_FOUND, camera_key(message.camera), match))
        metrics.MATCHES.labels(**labels).inc(len(outputs))
        metrics.CAPTURE_TO_MATCH_SECONDS.observe(max(0.0, time.time() - captured))
        return outputs

    def _search(self, deployment_id: str, probes, threshold: float):
        """Each probe's top k, and for a match its runner-up (another subject's best entry, scored
        against the same probe: the track's fused template, as the match's score is)."""
        results = []
        for probe in probes:
            started = time.perf_counter()
            hits = search_for_decision(self.index, deployment_id, probe, self.top_k, threshold, self.recheck_margin)
            results.append(with_runner_up(self.index, deployment_id, probe, hits, self.top_k, threshold))
            metrics.WATCHLIST_SEARCH_SECONDS.observe(time.perf_counter() - started)
        return results
