import numpy as np

from lfr_faces.alignment import SIZE, TEMPLATE, align, similarity_transform


def test_recovers_a_known_similarity_transform():
    angle, scale, shift = np.deg2rad(17), 2.5, np.array([40.0, -12.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = (TEMPLATE - shift) @ np.linalg.inv(rotation).T  # points that map onto the template
    matrix = similarity_transform(source)
    mapped = source @ matrix[:, :2].T + matrix[:, 2]
    assert np.allclose(mapped, TEMPLATE, atol=1e-6)


def test_aligned_face_is_112_square_and_edges_are_replicated_not_black():
    image = np.full((60, 60, 3), 200, np.uint8)  # a tight crop: the template reaches past it
    landmarks = TEMPLATE * 0.5 + 2
    aligned = align(image, landmarks)
    assert aligned.shape == (SIZE, SIZE, 3)
    assert aligned.min() == 200  # no black border invented
