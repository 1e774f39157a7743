"""Faces in, vectors out: embed's handler (alignment, one model run per batch)."""

from __future__ import annotations

import asyncio
import time

from lfr.v1 import faces_pb2
from lfr_contracts import FACES_DETECTED, FACES_EMBEDDED, camera_key
from lfr_embed.embedding import FaceToEmbed, embed_frames
from lfr_embed.wire import faces_embedded, faces_to_embed
from lfr_faces import images
from lfr_faces.embedders import Embedder
from lfr_platform import metrics, sealing
from lfr_platform.registry import DeploymentRegistry
from lfr_platform.skeleton import Admitted, DeploymentStage
from lfr_platform.stage import Outcome, Output, Rejected


class EmbedHandler(DeploymentStage[faces_pb2.FacesDetected]):
    input = FACES_DETECTED

    def __init__(self, embedder: Embedder, registry: DeploymentRegistry) -> None:
        self.embedder = embedder
        self.registry = registry

    async def process(self, records: list[Admitted[faces_pb2.FacesDetected]]) -> list[Outcome]:
        """The faces of the whole batch through the model at once."""
        outcomes: list[Outcome | None] = [None] * len(records)
        todo: list[tuple[int, list[FaceToEmbed]]] = []
        for i, record in enumerate(records):
            try:
                todo.append((i, faces_to_embed(record.message, record.open)))
            except sealing.SealError as exc:
                outcomes[i] = Rejected("unsealable", str(exc))
            except ValueError as exc:
                outcomes[i] = Rejected("invalid_face", str(exc))
        if not todo:
            return outcomes  # type: ignore[return-value]
        try:
            vectors = await asyncio.get_running_loop().run_in_executor(None, self._embed, [f for _, f in todo])
        except images.ImageRejected:
            if len(todo) > 1:
                raise  # the runner retries record by record to find the bad crop
            outcomes[todo[0][0]] = Rejected("undecodable_crop", "a face crop could not be decoded")
            return outcomes  # type: ignore[return-value]
        for (i, _), frame_vectors in zip(todo, vectors, strict=True):
            message = records[i].message
            labels = metrics.camera_labels(message.camera)
            metrics.FACES_EMBEDDED_TOTAL.labels(**labels, model=self.embedder.model_id).inc(len(frame_vectors))
            out = faces_embedded(message, self.embedder.model_id, frame_vectors, records[i].seal)
            outcomes[i] = [Output(FACES_EMBEDDED, camera_key(message.camera), out)]
        return outcomes  # type: ignore[return-value]

    def _embed(self, frames: list[list[FaceToEmbed]]):
        started = time.perf_counter()
        vectors = embed_frames(self.embedder, frames)
        metrics.INFERENCE_SECONDS.labels(self.embedder.model_id).observe(time.perf_counter() - started)
        return vectors
