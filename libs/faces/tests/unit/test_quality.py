import numpy as np

from lfr_faces.alignment import TEMPLATE
from lfr_faces.quality import Quality, QualityPolicy, yaw


def test_frontal_landmarks_have_no_yaw_and_a_turned_head_has_some():
    assert yaw(TEMPLATE.astype(np.float32)) < 0.05
    turned = TEMPLATE.copy()
    turned[2, 0] += 14  # nose tip moved towards one eye
    assert 0.6 < yaw(turned.astype(np.float32)) <= 1.0


def test_policy_names_the_first_reason_a_face_fails():
    policy = QualityPolicy(min_size_px=40, min_sharpness=10, max_yaw=0.6)
    assert policy.reason(Quality(80, 50, 0.1)) is None
    assert policy.reason(Quality(30, 50, 0.1)) == "face_too_small"
    assert policy.reason(Quality(80, 5, 0.1)) == "too_blurred"
    assert policy.reason(Quality(80, 50, 0.9)) == "pose_not_frontal"
