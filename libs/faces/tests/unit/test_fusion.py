"""Fusing a track's shots into one template."""

import numpy as np
import pytest

from lfr_faces.fusion import fuse
from lfr_faces.quality import Quality, shot_quality


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_the_mean_is_quality_weighted_and_a_unit_vector():
    vectors = np.stack([_unit([1, 0, 0]), _unit([0, 1, 0])])
    fused = fuse(vectors, [0.9, 0.1], "mean")
    assert np.linalg.norm(fused) == pytest.approx(1.0, abs=1e-6)
    assert fused[0] > 0.99 * 0.9 / np.hypot(0.9, 0.1) and fused[1] > 0
    assert np.allclose(fuse(vectors, [0.5, 0.5]), _unit([1, 1, 0]), atol=1e-6)


def test_best_is_the_best_shot_and_bad_input_is_refused():
    vectors = np.stack([_unit([1, 0]), _unit([0, 1])])
    assert np.array_equal(fuse(vectors, [0.2, 0.7], "best"), vectors[1])
    with pytest.raises(ValueError):
        fuse(vectors, [0.2], "mean")
    with pytest.raises(ValueError):
        fuse(vectors, [0.2, 0.3], "median")


def test_shot_quality_grows_with_size_sharpness_frontality_and_confidence():
    good = shot_quality(Quality(size_px=120, sharpness=200, yaw=0.0), 0.95)
    assert good == pytest.approx(0.95)
    assert shot_quality(Quality(size_px=56, sharpness=200, yaw=0.0), 0.95) == pytest.approx(0.475)
    assert shot_quality(Quality(size_px=120, sharpness=200, yaw=0.5), 0.95) < good
    assert 0.0 <= shot_quality(Quality(size_px=0, sharpness=0, yaw=1.0), 0.0) <= 1.0
