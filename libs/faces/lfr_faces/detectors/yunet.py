"""YuNet (2023mar, anchor-free) on onnxruntime, decoding its outputs the way OpenCV's
FaceDetectorYN does, so that it can run on any provider and at the frame's own aspect ratio."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lfr_faces.detectors import Detection
from lfr_faces.inference import create_session

_STRIDES = (8, 16, 32)
_NMS_IOU = 0.3
_DIVISOR = 32  # input sides must be multiples of the largest stride


class YuNetDetector:
    def __init__(self, model_path: Path, *, input_width: int = 640, intra_op_threads: int = 1) -> None:
        self.session, self.provider = create_session(model_path, intra_op_threads)
        self.model_id = model_path.stem
        # Frames are scaled to this width before detection (0: native size); boxes come back in
        # the frame's own pixels. 640 finds faces down to about 20 px in a 720p frame.
        self.input_width = input_width
        self._input_name = self.session.get_inputs()[0].name
        self._output_names = [o.name for o in self.session.get_outputs()]
        self._grids: dict[tuple[int, int], list[np.ndarray]] = {}

    def detect(self, image_bgr: np.ndarray, min_score: float = 0.6) -> list[Detection]:
        height, width = image_bgr.shape[:2]
        scale = 1.0
        if self.input_width and width > self.input_width:
            scale = self.input_width / width
            image_bgr = cv2.resize(image_bgr, (self.input_width, round(height * scale)), interpolation=cv2.INTER_AREA)
        padded = _pad_to_multiple(image_bgr, _DIVISOR)
        blob = padded.transpose(2, 0, 1)[None].astype(np.float32)
        outputs = dict(
            zip(
                self._output_names,
                self.session.run(self._output_names, {self._input_name: blob}),
                strict=True,
            )
        )
        boxes, landmarks, scores = self._decode(outputs, padded.shape[0], padded.shape[1])
        keep = scores >= min_score
        boxes, landmarks, scores = boxes[keep], landmarks[keep], scores[keep]
        if len(scores) == 0:
            return []
        chosen = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), min_score, _NMS_IOU)
        detections = []
        for i in np.asarray(chosen, dtype=int).reshape(-1):
            x, y, w, h = (boxes[i] / scale).tolist()
            detections.append(Detection((x, y, w, h), (landmarks[i] / scale).astype(np.float32), float(scores[i])))
        return detections

    def _decode(self, out: dict[str, np.ndarray], height: int, width: int):
        all_boxes, all_landmarks, all_scores = [], [], []
        for stride in _STRIDES:
            cols, rows = width // stride, height // stride
            grid = self._grid(rows, cols)
            cls = out[f"cls_{stride}"][0, :, 0]
            obj = out[f"obj_{stride}"][0, :, 0]
            scores = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
            bbox = out[f"bbox_{stride}"][0]
            kps = out[f"kps_{stride}"][0]
            centre = (grid + bbox[:, :2]) * stride
            size = np.exp(bbox[:, 2:4]) * stride
            all_boxes.append(np.concatenate([centre - size / 2, size], axis=1))
            all_landmarks.append((kps.reshape(-1, 5, 2) + grid[:, None, :]) * stride)
            all_scores.append(scores)
        return np.concatenate(all_boxes), np.concatenate(all_landmarks), np.concatenate(all_scores)

    def _grid(self, rows: int, cols: int) -> np.ndarray:
        key = (rows, cols)
        if key not in self._grids:
            ys, xs = np.mgrid[0:rows, 0:cols]
            self._grids[key] = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
        return self._grids[key]


def _pad_to_multiple(image: np.ndarray, divisor: int) -> np.ndarray:
    height, width = image.shape[:2]
    pad_h, pad_w = -height % divisor, -width % divisor
    if pad_h or pad_w:
        image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return image
