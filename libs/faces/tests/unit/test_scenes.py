"""The scene around a tracked face (lfr_faces.scenes): its region, clipped at the frame's edge; the face
boxed and clear; every other face covered whatever its number; and no scene where the face is hidden."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from lfr_faces import images, scenes


def _frame(width: int = 1280, height: int = 720, seed: int = 0) -> np.ndarray:
    """A smooth random picture: JPEG keeps it within a few levels, so pixels can be compared."""
    small = np.random.default_rng(seed).integers(0, 256, (9, 16, 3)).astype(np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _pixels(scene: scenes.Scene) -> np.ndarray:
    return images.decode_jpeg(scene.jpeg, max_bytes=10**7, max_pixels=10**7)


def _in_scene(scene: scenes.Scene, box) -> tuple[int, int, int, int]:
    """A frame box in the scene's pixels, as ints (x0, y0, x1, y1)."""
    x0, y0, w0, h0 = scene.region
    sx, sy = scene.width / w0, scene.height / h0
    x, y, w, h = box
    return round((x - x0) * sx), round((y - y0) * sy), round((x + w - x0) * sx), round((y + h - y0) * sy)


def _covered(pixels: np.ndarray, box) -> bool:
    """Nearly every pixel of the box (scene pixels) is the cover's colour, JPEG's ringing aside (and the
    line drawn round the tracked face, which may cross a neighbour's box)."""
    x0, y0, x1, y1 = box
    patch = pixels[max(0, y0) : y1, max(0, x0) : x1].reshape(-1, 3).astype(int)
    close = np.abs(patch - np.array(scenes.BLUR_COLOUR)).max(axis=1) <= 24
    return bool(len(patch)) and close.mean() >= 0.75


FACE = (600.0, 200.0, 80.0, 100.0)


def test_the_scene_is_the_region_from_above_the_head_to_the_waist_with_the_face_boxed_and_clear():
    frame = _frame()
    scene = scenes.compose_scene(frame, FACE, [])
    assert isinstance(scene, scenes.Scene)
    x, y, w, h = FACE
    # 8 face widths around the face's centre, from half a face height above it to 3.5 below its top.
    assert scene.region == (x + w / 2 - 4 * w, y - 0.5 * h, 8 * w, 4 * h)
    assert (scene.width, scene.height) == (640, 400) and scene.face == (280.0, 50.0, 80.0, 100.0)
    pixels = _pixels(scene)
    assert pixels.shape == (400, 640, 3) and scene.blurred == 0
    face = pixels[50:150, 280:360].astype(int)
    original = frame[200:300, 600:680].astype(int)
    assert np.abs(face - original).mean() < 3  # the face itself: untouched (JPEG aside)
    # The box is drawn just outside the face, in its colour.
    ring = pixels[50 - 4, 280:360].astype(int)
    assert np.abs(ring - np.array(scenes.FACE_BOX_COLOUR)).mean(axis=1).min() < 40


def test_a_person_at_the_frames_edge_gets_a_scene_clipped_there_not_padded():
    frame = _frame()
    at_edge = (10.0, 600.0, 80.0, 100.0)  # left edge, and the waist below the frame's bottom
    scene = scenes.compose_scene(frame, at_edge, [])
    assert isinstance(scene, scenes.Scene)
    assert scene.region == (0.0, 550.0, 370.0, 170.0)  # x from 0, not -270; y to 720, not 950
    assert scene.face == (10.0, 50.0, 80.0, 100.0)
    # Every pixel is the frame's own (beside the drawn box): nothing invented past the edge.
    assert np.abs(_pixels(scene)[:, 100:].astype(int) - frame[550:720, 100:370].astype(int)).mean() < 3


def test_every_other_face_is_covered_padded_and_the_tracked_face_stays_clear():
    frame = _frame()
    beside = (700.0, 230.0, 60.0, 75.0)  # its padding reaches into the tracked face's box
    below = (560.0, 420.0, 50.0, 60.0)
    far = (100.0, 100.0, 80.0, 100.0)  # outside the scene: nothing to do
    scene = scenes.compose_scene(frame, FACE, [beside, below, far])
    assert isinstance(scene, scenes.Scene) and scene.blurred == 2
    pixels = _pixels(scene)
    for box in (beside, below):
        assert _covered(pixels, _in_scene(scene, box))
    # The padding too (hair, ears: half the box's larger side each way), but never over the tracked face.
    px0, py0, _, _ = _in_scene(scene, scenes.padded(below))
    bx0, by0, _, _ = _in_scene(scene, below)
    assert _covered(pixels, (px0 + 1, py0 + 1, bx0, by0))
    fx0, fy0, fx1, fy1 = _in_scene(scene, FACE)
    assert not _covered(pixels, (fx0, fy0, fx1, fy1))
    assert np.abs(pixels[fy0:fy1, fx0:fx1].astype(int) - frame[200:300, 600:680].astype(int)).mean() < 3


def test_the_cover_keeps_nothing_of_the_face_under_it():
    """Two frames that differ only under another face give the same scene: nothing of it is recoverable."""
    first, second = _frame(seed=1), _frame(seed=1)
    other = (700.0, 230.0, 60.0, 75.0)
    second[230:305, 700:760] = _frame(seed=2)[230:305, 700:760]
    a, b = (_pixels(scenes.compose_scene(f, FACE, [other])) for f in (first, second))
    assert np.array_equal(a, b)


def test_a_crowd_of_thirty_faces_is_all_covered_at_a_bounded_cost():
    frame = _frame(1920, 1080)
    face = (900.0, 300.0, 120.0, 150.0)  # its scene: x 480-1440, y 225-825, scaled by 2/3
    grid = [(785.0 + 60 * (i % 6), 230.0 + 100 * (i // 6), 40.0, 50.0) for i in range(36)]
    crowd = [b for b in grid if scenes.overlap(b, face) == 0][:30]
    assert len(crowd) == 30
    started = time.process_time()
    scene = scenes.compose_scene(frame, face, crowd)
    elapsed = time.process_time() - started
    assert isinstance(scene, scenes.Scene) and max(scene.width, scene.height) <= scenes.SCENE_MAX_SIDE
    pixels = _pixels(scene)
    inside = [b for b in crowd if scenes.overlap(b, scene.region) == b[2] * b[3]]
    assert len(inside) == 30 and scene.blurred == 30
    assert all(_covered(pixels, _in_scene(scene, b)) for b in inside)
    # The work is the scene's pixels, each face's box at most once: milliseconds, not per-face seconds.
    assert elapsed < 0.5, elapsed


def test_a_large_face_gives_a_scene_scaled_down_to_the_maximum_side():
    frame = _frame(3840, 2160)
    face = (1800.0, 200.0, 400.0, 480.0)
    scene = scenes.compose_scene(frame, face, [])
    assert isinstance(scene, scenes.Scene) and max(scene.width, scene.height) == scenes.SCENE_MAX_SIDE
    sx, sy = scene.width / scene.region[2], scene.height / scene.region[3]
    assert scene.face == pytest.approx(((face[0] - scene.region[0]) * sx, (face[1] - scene.region[1]) * sy,
                                        400 * sx, 480 * sy))  # fmt: skip


@pytest.mark.parametrize(
    "other, face",
    [
        ((620.0, 180.0, 80.0, 100.0), FACE),  # one head in front of another: over a fifth of it covered
        ((0.0, 0.0, 10.0, 10.0), (-70.0, 200.0, 80.0, 100.0)),  # the box mostly outside the frame
    ],
    ids=["covered", "outside"],
)
def test_a_face_not_found_clear_in_its_frame_has_no_scene(other, face):
    assert scenes.compose_scene(_frame(), face, [other]) == scenes.NoScene(scenes.FACE_NOT_FOUND)
