"""The scene around a tracked face, for the officer who must find the person: the region from above
the head to the waist, clipped at the frame's edge, the face boxed, and every other face in it
blurred beyond recovery (docs/decisions/0020-scene-images-with-bystanders-blurred.md).

Pure functions on pixels: detect composes a scene for each shot it sends to embed, from the frame it
has decoded anyway and the detector's boxes of every face in it; the bench and the tests call the same
functions. No I/O here.

Each other face's box, padded, is covered by a solid patch of one colour: the strongest blur there is,
keeping nothing of the face (a Gaussian blur can be partly deconvolved; a mosaic keeps its cells'
means). Weaker blurs were measured and failed: SFace maps featureless patches close to the vectors of
small faces (a flat grey square scores up to 0.47 against real faces), so a mosaic of any strength
left bystanders of the crowd clip at 0.30 or more against their own originals; the colour chosen is the
one SFace scores lowest against every real face it was tried on (decision 0020).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from lfr_faces import images

Box = tuple[float, float, float, float]  # x, y, width, height

# The region around the tracked face, in face-box sides: 8 face widths wide (the person and about a
# person either side: who they walk with, which way, what is around them), from half a face height
# above the box (the crown, a hat) to 3.5 below its top (about the waist: a head is about an eighth of
# a standing body). 3 face widths, the first choice, showed no one else in the crowd clip's alert
# (decision 0020): a scene the officer cannot place the person in.
SCENE_WIDTH_FACES = 8.0
SCENE_ABOVE_FACES = 0.5
SCENE_BELOW_FACES = 3.5
# Scenes are downscaled to at most this side (never upscaled): a phone's width, enough to see clothing
# and what is carried; at quality 80 a scene is 5-40 KiB (docs/performance.md).
SCENE_MAX_SIDE = 640
SCENE_JPEG_QUALITY = 80
# Every face the detector finds at this score or above is blurred, though only faces at detect's
# min_score (0.6) are identified: YuNet scores a face half hidden behind another, or turned away,
# 0.3-0.6 on the crowd clip. What it scores 0.3 and is no face costs a grey patch.
BLUR_MIN_SCORE = 0.3
# Each other face's detector box is padded by this share of its larger side on each side: YuNet's box
# stops at the brow and the chin, and the 112x112 crop a recogniser aligns reaches past it by up to
# half a side (0.43 for 9 faces in 10 of the crowd clip): hair, ears and jaw line identify too.
BLUR_PADDING = 0.5
# The patch's colour (BGR): pure blue. Of 125 colours (each channel 0, 64, 128, 192, 255), SFace
# scores a patch of this one at most 0.25 against every one of 6,922 LFW and 4,869 UTKFace faces
# (grey 128: 0.47); on the crowd clip, the covered bystanders detect would identify score at most 0.20
# against their originals (decision 0020). A patch is the same whoever was under it.
BLUR_COLOUR = (255, 0, 0)
# The tracked face stays clear of the other faces' padding; but where another face's own box covers
# more than this share of it (one head in front of another), it is not shown at all.
MAX_FACE_OBSCURED = 0.2
FACE_BOX_COLOUR = (0, 220, 255)  # BGR: amber, visible on skin, clothes and stone alike

# Why a scene is not composed: the tracked face's box lies mostly outside the frame, or another face
# covers it.
FACE_NOT_FOUND = "face_not_found"


@dataclass(frozen=True)
class Scene:
    """A composed scene: `jpeg` (in clear: the caller seals it), the `region` of the frame it shows (frame
    pixels, clipped at the frame's edge), the tracked `face` box in the scene's own pixels, its size, and
    how many other faces were blurred in it."""

    jpeg: bytes
    region: Box
    face: Box
    width: int
    height: int
    blurred: int


@dataclass(frozen=True)
class NoScene:
    """No scene for this face, and why (FACE_NOT_FOUND)."""

    reason: str


def region_of(face: Box, frame_width: int, frame_height: int) -> tuple[int, int, int, int] | None:
    """The scene's rectangle (x0, y0, x1, y1) in frame pixels, clipped at the frame's edge (never
    padded: what lies beyond the edge was not seen); None when too little of it is in the frame."""
    x, y, w, h = face
    centre = x + w / 2
    x0 = max(0, math.floor(centre - SCENE_WIDTH_FACES * w / 2))
    x1 = min(frame_width, math.ceil(centre + SCENE_WIDTH_FACES * w / 2))
    y0 = max(0, math.floor(y - SCENE_ABOVE_FACES * h))
    y1 = min(frame_height, math.ceil(y + SCENE_BELOW_FACES * h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1, y1


def padded(box: Box, padding: float = BLUR_PADDING) -> Box:
    x, y, w, h = box
    pad = padding * max(w, h)
    return x - pad, y - pad, w + 2 * pad, h + 2 * pad


# A way of blurring: the pixels to put in place of a face's padded box (given its pixels and its box).
Fill = Callable[[np.ndarray, Box], np.ndarray]


def solid(patch: np.ndarray, face: Box) -> np.ndarray:
    """The shipped blur: the patch in BLUR_COLOUR, nothing of its pixels kept."""
    return np.broadcast_to(np.array(BLUR_COLOUR, np.uint8), patch.shape)


def blur_faces(
    image: np.ndarray, faces: list[Box], keep: Box | None = None, padding: float = BLUR_PADDING, fill: Fill = solid
) -> int:
    """Paint `fill` (the solid patch) over each face box (image pixels) padded, in place; the `keep` box
    (the tracked face) stays clear of the padding, never of another face's own box. Returns how many
    were painted (those reaching into the image). Rectangles only: the work is each painted box's
    pixels, at most the image's each, with no per-pixel mask."""
    height, width = image.shape[:2]
    kept = _clip(keep, width, height) if keep is not None else None
    saved = image[kept[1] : kept[3], kept[0] : kept[2]].copy() if kept is not None else None
    painted = []
    # Largest first: where boxes overlap, a smaller face's own box is painted last (a fill the bench
    # compares may depend on the face).
    for face in sorted(faces, key=lambda b: -max(b[2], b[3])):
        outer = _clip(padded(face, padding), width, height)
        if outer is None:
            continue
        x0, y0, x1, y1 = outer
        image[y0:y1, x0:x1] = fill(image[y0:y1, x0:x1], face)
        painted.append(face)
    if kept is not None and painted:
        kx0, ky0, kx1, ky1 = kept
        image[ky0:ky1, kx0:kx1] = saved  # the tracked face, clear of the others' padding...
        for face in painted:  # ...but not of another face's own box (one head in front of another)
            own = _clip(face, width, height)
            if own is not None and own[0] < kx1 and kx0 < own[2] and own[1] < ky1 and ky0 < own[3]:
                x0, y0, x1, y1 = max(own[0], kx0), max(own[1], ky0), min(own[2], kx1), min(own[3], ky1)
                image[y0:y1, x0:x1] = fill(image[y0:y1, x0:x1], face)
    return len(painted)


def compose_scene(
    image_bgr: np.ndarray, face: Box, others: list[Box], padding: float = BLUR_PADDING, fill: Fill = solid
) -> Scene | NoScene:
    """The scene of the face at `face` (frame pixels) in the decoded frame, every box of `others` (the
    detector's boxes of every other face in the frame, whatever their quality) blurred. `padding` and
    `fill` are the shipped ones; the bench compares others (decision 0020)."""
    frame_height, frame_width = image_bgr.shape[:2]
    region = region_of(face, frame_width, frame_height)
    _, _, fw, fh = face
    if region is None or fw <= 0 or fh <= 0 or overlap(face, (0, 0, frame_width, frame_height)) < 0.5 * fw * fh:
        return NoScene(FACE_NOT_FOUND)
    x0, y0, x1, y1 = region
    scale = min(1.0, SCENE_MAX_SIDE / max(x1 - x0, y1 - y0))
    view = image_bgr[y0:y1, x0:x1]
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    scene = cv2.resize(view, size, interpolation=cv2.INTER_AREA) if scale < 1 else view.copy()

    sx, sy = size[0] / (x1 - x0), size[1] / (y1 - y0)  # the scale, as rounded to whole pixels

    def to_scene(box: Box) -> Box:
        x, y, w, h = box
        return (x - x0) * sx, (y - y0) * sy, w * sx, h * sy

    tracked = to_scene(face)
    bounds = (0.0, 0.0, float(size[0]), float(size[1]))
    near = [to_scene(o) for o in others if overlap(to_scene(padded(o, padding)), bounds) > 0]
    if _covered(tracked, near) > MAX_FACE_OBSCURED:
        return NoScene(FACE_NOT_FOUND)
    blurred = blur_faces(scene, near, keep=tracked, padding=padding, fill=fill)
    _draw_box(scene, tracked)
    return Scene(
        jpeg=images.encode_jpeg(scene, SCENE_JPEG_QUALITY),
        region=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
        face=tracked,
        width=size[0],
        height=size[1],
        blurred=blurred,
    )


def _clip(box: Box, width: int, height: int) -> tuple[int, int, int, int] | None:
    x, y, w, h = box
    x0, y0 = max(0, math.floor(x)), max(0, math.floor(y))
    x1, y1 = min(width, math.ceil(x + w)), min(height, math.ceil(y + h))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def overlap(a: Box, b: Box) -> float:
    """The area two boxes share."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


def _covered(face: Box, boxes: list[Box]) -> float:
    """The share of the face's box under any of the boxes (their union, on a grid of the face's pixels)."""
    x, y, w, h = face
    cols, rows = max(1, math.ceil(w)), max(1, math.ceil(h))
    grid = np.zeros((rows, cols), bool)
    for bx, by, bw, bh in boxes:
        c0, r0 = max(0, math.floor(bx - x)), max(0, math.floor(by - y))
        c1, r1 = min(cols, math.ceil(bx + bw - x)), min(rows, math.ceil(by + bh - y))
        if c1 > c0 and r1 > r0:
            grid[r0:r1, c0:c1] = True
    return float(grid.mean())


def _draw_box(scene: np.ndarray, face: Box) -> None:
    """The tracked face boxed just outside its detector box, so that the line hides none of it."""
    thickness = max(2, round(max(scene.shape[:2]) / 200))
    x, y, w, h = face
    out = thickness + thickness // 2
    cv2.rectangle(
        scene,
        (round(x) - out, round(y) - out),
        (round(x + w) + out, round(y + h) + out),
        FACE_BOX_COLOUR,
        thickness,
        lineType=cv2.LINE_AA,
    )
