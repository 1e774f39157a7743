"""Decompression bombs for enrolment's tests and `make bench`: small files that take a decoder far
more memory than their header suggests. Made on the spot, never committed.

Each is a plain grey picture, so it compresses to almost nothing, yet stays under the 50 Mpixel cap:
the memory a decoder takes is what the attack is about, not what the picture shows.
"""

from __future__ import annotations

import io
import struct

import cv2
import numpy as np
from PIL import Image

# The bus probe's sizes (issue 25): 7000x7000 is 49 Mpixel, just under LFR_DEPLOYMENTS_ENROL_MAX_PIXELS.
SIDE = 7000


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def multi_scan_jpeg(width: int = SIDE, height: int = SIDE) -> bytes:
    """A baseline (sequential, Huffman) 4:4:4 JPEG with one scan per component, the probe's bomb:
    its header reads as a baseline JPEG (no progressive flag), but libjpeg must keep every DCT
    coefficient of the image (2 bytes per sample, 294 MB at 7000x7000) until the last scan arrives.

    Written by hand: no encoder offers a scan script. Every 8x8 block of a mid-grey image is a zero
    DC difference and an end-of-block; with two-code Huffman tables each is 4 zero bits, so each
    scan is a run of zero bytes (about 0.6 MB in all at 7000x7000)."""
    blocks = -(-width // 8) * -(-height // 8)
    table = bytes([0, 2] + [0] * 14) + bytes([0, 1])  # two codes of 2 bits: symbols 0 and 1
    parts = [
        b"\xff\xd8",
        _segment(0xDB, b"\x00" + bytes([1] * 64)),
        _segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + b"".join(bytes([c, 0x11, 0]) for c in (1, 2, 3))),
        _segment(0xC4, b"\x00" + table + b"\x10" + table),  # DC table 0, AC table 0
    ]
    scan = bytes(-(-blocks // 2))  # 4 bits a block, zeros (the padding of an odd count is zero bits too)
    for component in (1, 2, 3):
        parts.append(_segment(0xDA, bytes([1, component, 0x00, 0, 63, 0])))
        parts.append(scan)
    parts.append(b"\xff\xd9")
    return b"".join(parts)


def progressive_jpeg(side: int = SIDE, *, subsampling: int = 0) -> bytes:
    """A progressive JPEG (4:4:4 unless told): libjpeg holds all its coefficients, whatever the reduction."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (128, 128, 128)).save(
        buffer, "JPEG", quality=90, progressive=True, subsampling=subsampling
    )
    return buffer.getvalue()


def png(side: int = 5500) -> bytes:
    """A PNG: decoded at full size, whatever the reduction asked for (91 MB at 5500x5500 as BGR)."""
    return cv2.imencode(".png", np.full((side, side, 3), 128, np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()


def png_16bit(side: int = SIDE) -> bytes:
    """A 16-bit RGBA PNG: 8 bytes a pixel while decoded (392 MB at 7000x7000)."""
    return cv2.imencode(".png", np.full((side, side, 4), 32768, np.uint16), [cv2.IMWRITE_PNG_COMPRESSION, 9])[
        1
    ].tobytes()


def webp(side: int = SIDE) -> bytes:
    """A lossless WebP: decoded at full size (147 MB at 7000x7000)."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (128, 128, 128)).save(buffer, "WEBP", lossless=True)
    return buffer.getvalue()


def all_bombs() -> dict[str, bytes]:
    """The probe's bombs and their kin, by format: what enrolment must refuse, or decode, in bounds."""
    return {
        "multi-scan baseline JPEG 7000": multi_scan_jpeg(),
        "progressive JPEG 4:4:4 7000": progressive_jpeg(),
        "progressive JPEG 4:2:0 5000": progressive_jpeg(5000, subsampling=2),
        "PNG 5500": png(),
        "PNG 16-bit RGBA 7000": png_16bit(),
        "WebP 7000": webp(),
    }
