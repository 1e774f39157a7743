"""Is a photo fit for a watchlist, and what is its vector? The live path's own functions decide.

An enrolment photo must show exactly one face, large, sharp and frontal enough to identify:
blurry 22x28 crops enrolled in open-source systems are what then match strangers. Every refusal
carries a reason a person can act on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from lfr_faces import images
from lfr_faces.crops import align_crop, crop
from lfr_faces.detectors import Detector
from lfr_faces.embedders import Embedder
from lfr_faces.quality import assess

# When counting faces, a face smaller than this fraction of the largest one is background (a
# passer-by, a poster) and does not make the photo ambiguous; one of comparable size does.
_BACKGROUND_FACE_RATIO = 0.5


class EnrolRejected(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# Enrolment could embed the face and its mirror image and keep their mean: measured, it raised the
# highest impostor score as much as the genuine ones, so the calibrated threshold rose from 0.69 to
# 0.71 and TPIR there fell from 47.7% to 40.7% (decision 0012). Off; `lfr eval --mirrored-enrolment`
# measures it again for another model.
MIRRORED = False


@dataclass(frozen=True)
class EnrolmentPolicy:
    max_bytes: int
    max_pixels: int
    min_face_px: float
    min_sharpness: float
    max_yaw: float
    min_score: float
    # Photos larger than this (longer side, px) are reduced while decoded: memory stays bounded, and a
    # face of a custody photo keeps far more than the pixels the model uses (112).
    decode_max_side: int = 2000
    # The template is the mean of the face and its mirror image.
    mirrored: bool = MIRRORED


# The reference thumbnail an officer compares the live face with: the aligned face the model saw.
THUMBNAIL_JPEG_QUALITY = 85


@dataclass(frozen=True)
class Analysed:
    vector: np.ndarray
    image_sha256: str
    # The aligned 112x112 face as JPEG: the only part of an enrolment image kept (sealed, until close).
    thumbnail: bytes


class Enroller:
    def __init__(self, detector: Detector, embedder: Embedder, policy: EnrolmentPolicy) -> None:
        self.detector = detector
        self.embedder = embedder
        self.policy = policy

    def plan(self, data: bytes) -> images.Decoding:
        """How the photo will be decoded, from its header alone (the first line of defence: its
        size in bytes and in pixels, its format, a truncated JPEG); EnrolRejected for a photo that
        would never be analysed. What decoding it takes is not planned: the deployments service
        decodes it under a limit the operating system enforces (lfr_deployments.decoding)."""
        p = self.policy
        try:
            return images.plan(data, max_bytes=p.max_bytes, max_pixels=p.max_pixels, max_side=p.decode_max_side)
        except images.ImageRejected as exc:
            raise EnrolRejected(exc.reason, exc.detail) from exc

    def analyse(self, data: bytes, image: np.ndarray | None = None) -> Analysed:
        """The vector of the one face in `data`, or EnrolRejected with the reason. `image`: its pixels,
        decoded already (an untrusted photo, in a bounded worker); without it, `data` is decoded here,
        for files that are trusted (the evaluation's data sets)."""
        p = self.policy
        if image is None:
            try:
                image = images.decode_planned(data, self.plan(data), p.decode_max_side)
            except images.ImageRejected as exc:
                raise EnrolRejected(exc.reason, exc.detail) from exc
        faces = self.detector.detect(image, p.min_score)
        if faces:
            largest = max(min(d.box[2:]) for d in faces)
            faces = [d for d in faces if min(d.box[2:]) >= _BACKGROUND_FACE_RATIO * largest]
        if not faces:
            raise EnrolRejected("no_face", "no face found: use a photo where the face is clearly visible")
        if len(faces) > 1:
            raise EnrolRejected("multiple_faces", f"{len(faces)} faces found: crop the photo to the subject alone")
        face = faces[0]
        quality = assess(image, face.box, face.landmarks)
        if quality.size_px < p.min_face_px:
            raise EnrolRejected(
                "face_too_small", f"face is {quality.size_px:.0f} px; at least {p.min_face_px:.0f} px needed"
            )
        if quality.sharpness < p.min_sharpness:
            raise EnrolRejected(
                "too_blurred", f"sharpness {quality.sharpness:.0f}; at least {p.min_sharpness:.0f} needed"
            )
        if quality.yaw > p.max_yaw:
            raise EnrolRejected(
                "pose_not_frontal",
                f"head turned {quality.yaw:.2f} (0 frontal, 1 profile); at most {p.max_yaw:.2f}",
            )
        jpeg, _, landmarks = crop(image, face)
        aligned = align_crop(jpeg, landmarks)  # what embed_crops does, kept for the thumbnail
        if p.mirrored:
            pair = self.embedder.embed([aligned, np.ascontiguousarray(aligned[:, ::-1])])
            vector = pair.sum(axis=0)
            vector = (vector / np.linalg.norm(vector)).astype(np.float32)
        else:
            vector = self.embedder.embed([aligned])[0]
        return Analysed(
            vector=vector,
            image_sha256=hashlib.sha256(data).hexdigest(),
            thumbnail=images.encode_jpeg(aligned, THUMBNAIL_JPEG_QUALITY),
        )
