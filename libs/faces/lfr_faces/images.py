"""Decoding untrusted image bytes safely: size limits before pixels are decoded, truncation caught.

Used on camera frames (detect) and on watchlist photos (enrolment). A decompression bomb is a small
file that declares a huge image: its declared size is read from the header (Pillow, without
decoding) and refused before any pixel is allocated.
"""

from __future__ import annotations

import io
import warnings

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


def probe(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:
                return (img.format or "unknown"), img.width, img.height
        except Image.DecompressionBombError as exc:
            raise ImageRejected("too_large", f"declared size is a decompression bomb: {exc}") from exc
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ImageRejected("not_an_image", "not a recognisable image file") from exc


# libjpeg decodes straight to 1/2, 1/4 or 1/8 of the size: a big photo never exists at full size.
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def decode(data: bytes, *, max_bytes: int, max_pixels: int, max_side: int = 0) -> np.ndarray:
    """BGR pixels of an encoded image (EXIF orientation applied), or ImageRejected.

    With `max_side`, an image larger than that is reduced while it is decoded (JPEG: by libjpeg, to
    the largest power-of-two reduction whose longer side stays at or above `max_side`; others: after
    decoding), so that its memory is bounded by the reduced size."""
    if len(data) > max_bytes:
        raise ImageRejected("too_large", f"{len(data)} bytes; at most {max_bytes} accepted")
    fmt, width, height = probe(data)
    if width * height > max_pixels:
        raise ImageRejected("too_large", f"{width}x{height} pixels; at most {max_pixels} pixels accepted")
    if fmt == "JPEG" and not data.rstrip(b"\x00").endswith(_JPEG_EOI):
        # libjpeg decodes a truncated file and fills the rest with grey: refuse it instead.
        raise ImageRejected("undecodable", "truncated JPEG (no end-of-image marker)")
    flag = cv2.IMREAD_COLOR
    if max_side and fmt == "JPEG":
        flag = next((f for factor, f in _REDUCED if max(width, height) // factor >= max_side), flag)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if image is None:
        raise ImageRejected("undecodable", f"{fmt} data could not be decoded")
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
