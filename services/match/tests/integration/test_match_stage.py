"""match over the real broker and Redis: real vectors in, matches out, non-matches dropped."""

import numpy as np
import pytest

from lfr.v1 import common_pb2
from lfr_contracts import FACES_EMBEDDED, MATCHES_FOUND, dead_letter_topic
from lfr_faces import images
from lfr_faces.crops import embed_crops, find_faces
from lfr_faces.detectors import build_detector
from lfr_faces.embedders import build_embedder
from lfr_faces.quality import QualityPolicy
from lfr_platform import metrics, sealing
from lfr_testing.deployments import Api, create_request, watchlist_image
from lfr_testing.kafka import decoded, produce, read
from lfr_testing.media import lfw
from lfr_testing.messages import faces_embedded_record
from lfr_testing.services import deployment_key

pytestmark = pytest.mark.integration


def _probe(models_dir, photo):
    image = images.decode(photo.read_bytes(), max_bytes=10**7, max_pixels=10**7)
    crops, _ = find_faces(
        build_detector("yunet", models_dir / "yunet-2023mar.onnx", input_width=640), image, QualityPolicy(), 0.6
    )
    vector = embed_crops(
        build_embedder("sface", models_dir / "sface-2021dec.onnx"), [(crops[0].jpeg, crops[0].landmarks)]
    )[0]
    return crops[0], vector


async def test_an_enrolled_person_matches_and_a_stranger_is_only_counted(
    platform, deployments, match, data_dir, models_dir
):
    api = Api(deployments.control.port)
    deployment = await api("create", create_request())
    deployment_id = deployment.deployment_id
    await api.enrol(
        deployment_id,
        [watchlist_image(lfw(data_dir, "Colin_Powell", 1), "Colin_Powell", "p", approved_by="A")],
    )
    # Nothing is matched before the review, which derives the threshold for the one entry reviewed.
    reviewed = (await api("review", deployment_id, "Insp. R")).deployment
    key = await deployment_key(platform, deployment_id)
    camera = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id="cam-1")

    def message(photo, sequence, model="sface-2021dec"):
        crop, vector = _probe(models_dir, photo)
        return faces_embedded_record(camera, sequence, key, crop, vector, model_id=model)

    scanned = metrics.FACES_SCANNED.labels(deployment_id, "van-1", "cam-1")
    await produce(
        platform,
        FACES_EMBEDDED,
        [
            message(lfw(data_dir, "Colin_Powell", 4), 1),  # another photo of the enrolled person
            message(lfw(data_dir, "George_W_Bush", 1), 2),  # a stranger
            message(lfw(data_dir, "Colin_Powell", 5), 3, model="arcface-r100"),  # another model's vectors
        ],
    )
    matches = decoded(MATCHES_FOUND, await read(platform, MATCHES_FOUND, count=1, settle_s=1.0))
    letters = decoded(dead_letter_topic("match"), await read(platform, dead_letter_topic("match"), count=1))
    assert [(m.subject_id, m.sequence) for m in matches] == [("Colin_Powell", 1)]
    match_found = matches[0]
    assert match_found.score >= match_found.threshold == pytest.approx(reviewed.threshold)
    assert reviewed.operating_point.entries == 1 and reviewed.threshold < deployment.threshold
    captured_ns = match_found.captured_at.ToNanoseconds()  # in the id: a restarted camera's ids are new
    assert captured_ns > 0 and match_found.match_id == f"{deployment_id}/van-1/cam-1/{captured_ns}/1/0"
    # The crop is sealed on the topic, as detect sealed it (the close makes it unreadable).
    with pytest.raises(images.ImageRejected):
        images.decode_jpeg(match_found.probe_crop, max_bytes=10**7, max_pixels=10**7)
    crop = sealing.unseal(key, match_found.probe_crop, deployment_id)
    assert images.decode_jpeg(crop, max_bytes=10**7, max_pixels=10**7).size > 0
    assert [d.reason for d in letters] == ["model_mismatch"]
    assert scanned._value.get() == 2
    assert np.isfinite(match_found.score)


async def test_a_track_is_decided_on_its_fused_shots_and_forgotten_when_its_deployment_closes(
    platform, deployments, match, data_dir, models_dir, eventually
):
    """Three shots of one pass: each decision uses the template of the shots so far, with their count."""
    api = Api(deployments.control.port)
    deployment_id = (await api("create", create_request())).deployment_id
    await api.enrol(
        deployment_id,
        [watchlist_image(lfw(data_dir, "Colin_Powell", 1), "Colin_Powell", "p", approved_by="A")],
    )
    await api("review", deployment_id, "Insp. R")  # nothing is matched before the review
    key = await deployment_key(platform, deployment_id)
    camera = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id="cam-1")
    records, vectors = [], []
    for sequence, number in enumerate((2, 4, 5), start=1):
        crop, vector = _probe(models_dir, lfw(data_dir, "Colin_Powell", number))
        vectors.append(vector)
        records.append(
            faces_embedded_record(camera, sequence, key, crop, vector, track_id="detect-a:7", shot_quality=0.5)
        )
    await produce(platform, FACES_EMBEDDED, records)
    matches = decoded(MATCHES_FOUND, await read(platform, MATCHES_FOUND, count=3, settle_s=0.5))
    assert [(m.track_id, m.shots) for m in matches] == [("detect-a:7", 1), ("detect-a:7", 2), ("detect-a:7", 3)]
    # The last decision's score is the fused template's, not the last shot's alone.
    from lfr_faces.fusion import fuse

    enrolled = _probe(models_dir, lfw(data_dir, "Colin_Powell", 1))[1]
    fused = fuse(np.stack(vectors), [0.5, 0.5, 0.5])
    assert matches[-1].score == pytest.approx(float(fused @ enrolled), abs=0.02)
    handler = match.handler  # the stage's templates are in memory only; closing forgets them
    assert len(handler.templates) == 1
    await api("close", deployment_id)
    await produce(platform, FACES_EMBEDDED, records[:1])  # a late record of the closed deployment
    await eventually(lambda: len(handler.templates) == 0)
