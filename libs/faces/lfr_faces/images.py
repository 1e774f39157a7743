"""Decoding untrusted image bytes safely: size limits before pixels are decoded, truncation caught.

Used on camera frames (detect) and on watchlist photos (enrolment). A decompression bomb is a small
file that declares a huge image: its declared size is read from the header (Pillow, without
decoding) and refused before any pixel is allocated.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"


class ImageRejected(ValueError):
    """reason: not_an_image, too_large or undecodable; detail says what a person can do."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Decoding:
    """How an image will be decoded, read from its header alone: what it is, the OpenCV flag (a JPEG
    reduced by libjpeg while decoded), and the most memory decoding it takes (`peak_bytes`)."""

    format: str
    width: int
    height: int
    flag: int
    peak_bytes: int
    pixels_bytes: int  # the BGR image it yields (reduced as it will be)
    detail: str  # what drives the peak, for a refusal a person can act on


def probe(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header alone."""
    with _opened(data) as img:
        return (img.format or "unknown"), img.width, img.height


@contextlib.contextmanager
def _opened(data: bytes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:
                yield img
        except Image.DecompressionBombError as exc:
            raise ImageRejected("too_large", f"declared size is a decompression bomb: {exc}") from exc
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise ImageRejected("not_an_image", "not a recognisable image file") from exc


# libjpeg decodes straight to 1/2, 1/4 or 1/8 of the size: a big photo never exists at full size.
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))
# PNG colour types (IHDR) and their samples per pixel: grey, RGB, palette, grey+alpha, RGBA.
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def plan(data: bytes, *, max_bytes: int, max_pixels: int, max_side: int = 0) -> Decoding:
    """How `data` would be decoded, and at what memory cost, without decoding it (ImageRejected for
    what would never be: too many bytes or pixels, not an image, a truncated JPEG).

    The peak is measured, not guessed (docs/deployments.md#enrolment-memory): a baseline JPEG holds
    its reduced pixels twice; a progressive JPEG also every DCT coefficient of the full image (2 bytes
    per sample, whatever the reduction: libjpeg needs them all before the first pixel); a PNG its full
    image at its own depth, and again as BGR; anything else is assumed to hold 4 bytes per pixel twice.
    (2026-12-03, 7000x7000 images, ru_maxrss: 74, 179, 319 and 284 MB decoded; planned 70, 210, 350
    and 294 MB for baseline, progressive 4:2:0 and 4:4:4 JPEG, and PNG.)"""
    if len(data) > max_bytes:
        raise ImageRejected("too_large", f"{len(data)} bytes; at most {max_bytes} accepted")
    with _opened(data) as img:
        fmt, width, height = (img.format or "unknown"), img.width, img.height
        progressive = fmt == "JPEG" and bool(img.info.get("progressive") or img.info.get("progression"))
        layers = getattr(img, "layer", None) or []
    if width * height > max_pixels:
        raise ImageRejected("too_large", f"{width}x{height} pixels; at most {max_pixels} pixels accepted")
    if fmt == "JPEG" and not data.rstrip(b"\x00").endswith(_JPEG_EOI):
        # libjpeg decodes a truncated file and fills the rest with grey: refuse it instead.
        raise ImageRejected("undecodable", "truncated JPEG (no end-of-image marker)")
    pixels = width * height
    flag, factor = cv2.IMREAD_COLOR, 1
    if max_side and fmt == "JPEG":
        factor, flag = next(((f, g) for f, g in _REDUCED if max(width, height) // f >= max_side), (1, flag))
    decoded = -(-width // factor) * -(-height // factor) * 3
    resized = 0
    if max_side and max(width, height) // factor > 2 * max_side:
        resized = round(decoded * (max_side / (max(width, height) / factor)) ** 2)
    if fmt == "JPEG":
        peak, detail = 2 * decoded + resized, f"a baseline JPEG of {width}x{height}"
        if progressive:
            h_max = max((h for _, h, _, _ in layers), default=1)
            v_max = max((v for _, _, v, _ in layers), default=1)
            samples = sum(h * v for _, h, v, _ in layers) / (h_max * v_max) if layers else 3
            peak += int(pixels * samples * 2)
            detail = f"a progressive JPEG of {width}x{height} (libjpeg holds all of it at once)"
    elif fmt == "PNG" and data[12:16] == b"IHDR":
        depth, colour = data[24], data[25]
        samples = _PNG_SAMPLES.get(colour, 4)
        peak = pixels * samples * max(1, depth // 8) + pixels * 3 + resized
        detail = f"a PNG of {width}x{height} ({depth}-bit; a PNG is decoded at full size)"
    else:
        peak, detail = 2 * pixels * 4 + resized, f"a {fmt} of {width}x{height} (decoded at full size)"
    return Decoding(fmt, width, height, flag, peak, resized or decoded, detail)


def decode(data: bytes, *, max_bytes: int, max_pixels: int, max_side: int = 0) -> np.ndarray:
    """BGR pixels of an encoded image (EXIF orientation applied), or ImageRejected.

    With `max_side`, an image larger than that is reduced while it is decoded (JPEG: by libjpeg, to
    the largest power-of-two reduction whose longer side stays at or above `max_side`; others: after
    decoding), so that its memory is bounded by the reduced size."""
    return decode_planned(data, plan(data, max_bytes=max_bytes, max_pixels=max_pixels, max_side=max_side), max_side)


def decode_planned(data: bytes, decoding: Decoding, max_side: int = 0) -> np.ndarray:
    """decode() with its plan already made (by plan(), on the same bytes)."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), decoding.flag)
    if image is None:
        raise ImageRejected("undecodable", f"{decoding.format} data could not be decoded")
    longest = max(image.shape[:2])
    if max_side and longest > 2 * max_side:
        scale = max_side / longest
        image = cv2.resize(
            image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA
        )
    return image


def decode_jpeg(data: bytes, *, max_bytes: int, max_pixels: int) -> np.ndarray:
    """As decode(), for payloads that must be JPEG (frames and crops on the pipeline topics)."""
    if not data.startswith(_JPEG_SOI):
        raise ImageRejected("not_an_image", "payload is not a JPEG")
    return decode(data, max_bytes=max_bytes, max_pixels=max_pixels)


def encode_jpeg(image_bgr: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
