"""The runner-up of a match over the real broker, Redis and watchlist copy (issue 18, lookalikes): the
best other subject, scored on the same fused template as the match, never another photo of the same
subject; none on a watchlist of one subject. A subject of several photos is matched on their template
too (gallery fusion, built at the review), and its match names the subject's first photo as reference."""

import numpy as np
import pytest

from lfr.v1 import common_pb2
from lfr_contracts import FACES_EMBEDDED, MATCHES_FOUND
from lfr_faces import images
from lfr_faces.crops import embed_crops, find_faces
from lfr_faces.detectors import build_detector
from lfr_faces.embedders import build_embedder
from lfr_faces.fusion import fuse
from lfr_faces.quality import QualityPolicy
from lfr_testing.deployments import Api, create_request, watchlist_image
from lfr_testing.kafka import decoded, produce, read
from lfr_testing.media import lfw
from lfr_testing.messages import faces_embedded_record
from lfr_testing.services import deployment_key

pytestmark = pytest.mark.integration

# One person enrolled under two subject ids (as when two brothers look alike, Thompson & Carlo v MPC):
# five photos of "Colin_Powell" fill the whole top k (5) of a search, so the brother's one photo, which
# scores below all of them, is found by the search that leaves the best subject out.
SUBJECT, BROTHER, STRANGER = "Colin_Powell", "Colin_Powell_brother", "George_W_Bush"
ENROLLED = [(SUBJECT, "Colin_Powell", n) for n in (1, 2, 4, 5, 6)] + [
    (BROTHER, "Colin_Powell", 3),
    (STRANGER, "George_W_Bush", 1),
]
SHOTS = (7, 8)  # two shots of one pass, fused into the track's template


class Faces:
    """YuNet and SFace, loaded once, as detect and embed run them."""

    def __init__(self, models_dir) -> None:
        self.detector = build_detector("yunet", models_dir / "yunet-2023mar.onnx", input_width=640)
        self.embedder = build_embedder("sface", models_dir / "sface-2021dec.onnx")

    def probe(self, photo):
        image = images.decode(photo.read_bytes(), max_bytes=10**7, max_pixels=10**7)
        crops, _ = find_faces(self.detector, image, QualityPolicy(), 0.6)
        vector = embed_crops(self.embedder, [(crops[0].jpeg, crops[0].landmarks)])[0]
        return crops[0], vector


def _unit(vector) -> np.ndarray:
    return vector / np.linalg.norm(vector)


async def test_a_match_carries_the_other_subject_as_runner_up_with_its_margin_on_the_fused_template(
    platform, deployments, match, data_dir, models_dir
):
    api = Api(deployments.control.port)
    deployment_id = (await api("create", create_request())).deployment_id
    enrolled_as = await api.enrol(
        deployment_id,
        [
            watchlist_image(
                lfw(data_dir, person, number), subject, f"{subject}-{number}", source_reference=f"ref-{number}"
            )
            for subject, person, number in ENROLLED
        ],
    )
    reviewed = await api("review", deployment_id, "Insp. R")  # nothing is matched before the review
    # The template of the subject's five photos scores above the threshold against the brother's photo
    # (the same man): the review says so, as enrolment does for photos.
    [pair] = reviewed.template_lookalikes
    assert (pair.subject_id, pair.other_subject_id) == (SUBJECT, BROTHER)
    assert pair.score >= reviewed.deployment.threshold
    key = await deployment_key(platform, deployment_id)
    camera = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id="cam-1")
    faces = Faces(models_dir)
    records, vectors = [], []
    for sequence, number in enumerate(SHOTS, start=1):
        crop, vector = faces.probe(lfw(data_dir, "Colin_Powell", number))
        vectors.append(vector)
        records.append(
            faces_embedded_record(camera, sequence, key, crop, vector, track_id="detect-a:3", shot_quality=0.5)
        )
    await produce(platform, FACES_EMBEDDED, records)
    matches = decoded(MATCHES_FOUND, await read(platform, MATCHES_FOUND, count=2, settle_s=0.5))

    assert [(m.subject_id, m.runner_up_subject_id, m.shots) for m in matches] == [
        (SUBJECT, BROTHER, 1),
        (SUBJECT, BROTHER, 2),
    ]  # the brother, not another photo of the subject, nor the stranger
    # Both scores are the same probe's, the track's fused template, each against its subject's best
    # entry: for the subject, the template of its five photos, which scores above every one of them.
    enrolled = {
        (subject, number): _unit(faces.probe(lfw(data_dir, person, number))[1]) for subject, person, number in ENROLLED
    }
    probe = _unit(fuse(np.stack(vectors), [0.5, 0.5]))
    photos = [v for (subject, _), v in enrolled.items() if subject == SUBJECT]
    best_photo = max(float(probe @ v) for v in photos)
    subject_template = float(probe @ fuse(np.stack(photos), [1.0] * len(photos)))
    brother = max(float(probe @ v) for (subject, _), v in enrolled.items() if subject == BROTHER)
    last = matches[-1]
    assert last.score == pytest.approx(subject_template, abs=0.02) and last.score > best_photo + 0.03
    assert last.runner_up_score == pytest.approx(brother, abs=0.02)
    assert 0 < last.score - last.runner_up_score < 0.3  # a lookalike: close, and the officer sees by how much
    # The template holds no image: the match names the subject's first photo, the officer's reference.
    first_photo = next(r.entry_id for r in enrolled_as if r.client_ref == f"{SUBJECT}-1")
    assert last.candidates[0].entry_id == first_photo


async def test_a_watchlist_of_one_subject_gives_no_runner_up(platform, deployments, match, data_dir, models_dir):
    api = Api(deployments.control.port)
    deployment_id = (await api("create", create_request())).deployment_id
    await api.enrol(
        deployment_id,
        [
            watchlist_image(
                lfw(data_dir, "Colin_Powell", number), SUBJECT, f"p{number}", source_reference=f"ref-{number}"
            )
            for number in (1, 2)
        ],
    )
    await api("review", deployment_id, "Insp. R")
    key = await deployment_key(platform, deployment_id)
    camera = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id="cam-1")
    crop, vector = Faces(models_dir).probe(lfw(data_dir, "Colin_Powell", 7))
    await produce(platform, FACES_EMBEDDED, [faces_embedded_record(camera, 1, key, crop, vector)])
    [found] = decoded(MATCHES_FOUND, await read(platform, MATCHES_FOUND, count=1, settle_s=0.5))
    assert found.subject_id == SUBJECT and found.score >= found.threshold
    assert (found.runner_up_subject_id, found.runner_up_score) == ("", 0.0)
