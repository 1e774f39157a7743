"""An embedder for any ONNX face recognition model that takes (n, 3, 112, 112)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lfr_faces.embedders import Preprocessing
from lfr_faces.inference import create_session


class OnnxEmbedder:
    def __init__(
        self,
        model_path: Path,
        preprocessing: Preprocessing,
        *,
        model_id: str,
        max_batch: int,
        intra_op_threads: int,
    ) -> None:
        self.session, self.provider = create_session(model_path, intra_op_threads)
        self.model_id = model_id
        self.preprocessing = preprocessing
        self.max_batch = max_batch
        self._input = self.session.get_inputs()[0]
        batch_dim = self._input.shape[0]
        # A model exported with a fixed batch of 1 still works, one face per run.
        self._fixed_batch = batch_dim if isinstance(batch_dim, int) else None
        output = self.session.get_outputs()[0]
        self.dimension = int(output.shape[-1])

    def embed(self, aligned_bgr: list[np.ndarray]) -> np.ndarray:
        if not aligned_bgr:
            return np.zeros((0, self.dimension), dtype=np.float32)
        step = self._fixed_batch or self.max_batch
        chunks = [self._run(aligned_bgr[i : i + step]) for i in range(0, len(aligned_bgr), step)]
        vectors = np.concatenate(chunks).astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def _run(self, faces: list[np.ndarray]) -> np.ndarray:
        batch = np.stack(faces).astype(np.float32)
        if self.preprocessing.rgb:
            batch = batch[..., ::-1]
        batch = (batch - self.preprocessing.mean) / self.preprocessing.std
        blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        return self.session.run(None, {self._input.name: blob})[0].reshape(len(faces), -1)
