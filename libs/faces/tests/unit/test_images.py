import io

import numpy as np
import pytest
from PIL import Image

from lfr_faces import images


def _jpeg(width=64, height=48) -> bytes:
    return images.encode_jpeg(np.full((height, width, 3), 120, np.uint8), 90)


def test_a_jpeg_decodes_to_bgr_pixels():
    assert images.decode_jpeg(_jpeg(), max_bytes=10**6, max_pixels=10**6).shape == (48, 64, 3)


def test_a_truncated_jpeg_is_refused_instead_of_grey_filled():
    data = _jpeg(320, 240)
    with pytest.raises(images.ImageRejected) as exc:
        images.decode_jpeg(data[: len(data) // 2], max_bytes=10**6, max_pixels=10**6)
    assert exc.value.reason == "undecodable"


def test_frames_above_the_pixel_limit_are_refused_from_the_header():
    with pytest.raises(images.ImageRejected) as exc:
        images.decode_jpeg(_jpeg(320, 240), max_bytes=10**6, max_pixels=320 * 240 - 1)
    assert exc.value.reason == "too_large"


def test_a_decompression_bomb_is_refused_before_its_pixels_are_decoded():
    buffer = io.BytesIO()
    Image.new("1", (40_000, 40_000)).save(buffer, "PNG")  # 1.6 Gpixel declared, a few hundred kB on disk
    data = buffer.getvalue()
    assert len(data) < 1_000_000
    with pytest.raises(images.ImageRejected) as exc:
        images.decode(data, max_bytes=10**7, max_pixels=50_000_000)
    assert exc.value.reason == "too_large"


def test_bytes_that_are_no_image_are_named_so():
    with pytest.raises(images.ImageRejected) as exc:
        images.decode(b"%PDF-1.4 not a photo", max_bytes=10**6, max_pixels=10**6)
    assert exc.value.reason == "not_an_image"
    with pytest.raises(images.ImageRejected):
        images.decode_jpeg(b"\x89PNG...", max_bytes=10**6, max_pixels=10**6)


def test_oversized_files_are_refused_by_size():
    with pytest.raises(images.ImageRejected) as exc:
        images.decode(_jpeg(), max_bytes=100, max_pixels=10**6)
    assert exc.value.reason == "too_large"


def test_a_large_jpeg_is_reduced_while_decoded_and_small_ones_are_left_as_they_are():
    large = _jpeg(7000, 5000)
    reduced = images.decode(large, max_bytes=10**8, max_pixels=5 * 10**7, max_side=2000)
    # libjpeg's largest reduction (1/2, 1/4, 1/8) that keeps the longer side at 2000 px or more: 1/2.
    assert reduced.shape == (2500, 3500, 3)
    assert images.decode(large, max_bytes=10**8, max_pixels=5 * 10**7).shape == (5000, 7000, 3)
    assert images.decode(_jpeg(640, 480), max_bytes=10**6, max_pixels=10**6, max_side=2000).shape == (480, 640, 3)


def test_a_large_png_is_reduced_after_decoding():
    buffer = io.BytesIO()
    Image.new("RGB", (5000, 1000), (90, 120, 150)).save(buffer, "PNG")
    assert images.decode(buffer.getvalue(), max_bytes=10**8, max_pixels=10**7, max_side=1000).shape == (200, 1000, 3)
