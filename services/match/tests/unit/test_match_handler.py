"""match's handler without a broker: a fake watchlist index (the WatchlistIndex port, exact cosine over
a few vectors, with entries its approximate search can be told to miss), a fake registry, real
sealing and signing. What is checked: the decision at the deployment's own threshold, a track decided
on its shots fused by quality, the exact recheck just under the threshold, and the runner-up (the
margin alert holds a lookalike on) scored on the same template as the match."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict

import numpy as np
import pytest
from aiokafka.structs import ConsumerRecord

from lfr.v1 import common_pb2, embeddings_pb2
from lfr_contracts import MATCHES_FOUND, camera_key
from lfr_match.app import TOP_K
from lfr_match.handler import MatchHandler
from lfr_platform import metrics, sealing
from lfr_platform.registry import DeploymentView, RedisKeys
from lfr_platform.stage import Incoming, Rejected, Skipped
from lfr_watchlist import EXACT_RECHECK_MARGIN, CollectionMissing, Hit

DIMENSION = 128
MODEL = "sface-2021dec"
T0 = 1_800_000_000.0
E = np.eye(DIMENSION, dtype=np.float32)  # orthonormal directions: cosines are chosen, not measured


def _towards(cosine: float, away: np.ndarray) -> np.ndarray:
    """A unit vector at `cosine` to E[0], the rest of it along `away` (a unit vector orthogonal to E[0])."""
    return (cosine * E[0] + np.sqrt(1 - cosine**2) * away).astype(np.float32)


class Index:
    """The WatchlistIndex port's search: exact cosine over the entries; the approximate search (the
    default) misses the entries named in `missed`, as HNSW can near the threshold."""

    def __init__(self) -> None:
        self.entries: dict[str, list[tuple[str, str, np.ndarray]]] = defaultdict(list)
        self.missed: set[str] = set()
        self.searches: list[tuple[bool, str | None]] = []  # (exact, except_subject_id)

    def add(self, deployment_id: str, subject_id: str, vector: np.ndarray, entry_id: str = "") -> None:
        entry_id = entry_id or f"{subject_id}-{len(self.entries[deployment_id])}"
        self.entries[deployment_id].append((entry_id, subject_id, np.asarray(vector, np.float32)))

    def search(self, deployment_id, vector, k, exact=False, subject_id=None, except_subject_id=None) -> list[Hit]:
        if deployment_id not in self.entries:
            raise CollectionMissing(deployment_id)
        self.searches.append((exact, except_subject_id))
        hits = [
            Hit(entry_id, subject, "wanted", float(vector @ v))
            for entry_id, subject, v in self.entries[deployment_id]
            if (exact or entry_id not in self.missed) and subject_id in (None, subject) and except_subject_id != subject
        ]
        return sorted(hits, key=lambda h: h.score, reverse=True)[:k]


class Redis:
    """The two calls DeploymentStats makes: a pipeline of HINCRBY."""

    def __init__(self) -> None:
        self.hashes: dict[str, Counter] = defaultdict(Counter)

    def pipeline(self, transaction: bool = True) -> Redis._Pipeline:
        return Redis._Pipeline(self)

    class _Pipeline:
        def __init__(self, redis: Redis) -> None:
            self.redis = redis
            self.ops: list[tuple[str, str, int]] = []

        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc) -> None:
            return None

        def hincrby(self, key: str, field: str, n: int) -> None:
            self.ops.append((key, field, n))

        async def execute(self) -> None:
            for key, field, n in self.ops:
                self.redis.hashes[key][field] += n


class Registry:
    """The registry's read port, and the Redis client the deployment's counts are added with."""

    def __init__(self) -> None:
        self.client = Redis()
        self.keys = RedisKeys("t")
        self.views: dict[str, DeploymentView] = {}

    def open(self, threshold: float = 0.69, state: str = "active") -> tuple[str, bytes]:
        deployment_id = f"dep-{uuid.uuid4().hex[:8]}"
        self.views[deployment_id] = self._view(deployment_id, threshold, state, sealing.new_data_key())
        return deployment_id, self.views[deployment_id].data_key

    def close(self, deployment_id: str) -> None:
        view = self.views[deployment_id]
        self.views[deployment_id] = self._view(deployment_id, view.threshold, "closed", None)

    @staticmethod
    def _view(deployment_id: str, threshold: float, state: str, key: bytes | None) -> DeploymentView:
        return DeploymentView(
            deployment_id=deployment_id,
            state=state,
            threshold=threshold,
            model_id=MODEL,
            data_key=key,
            cameras=frozenset(),
        )

    async def lookup(self, deployment_id: str) -> DeploymentView | None:
        return self.views.get(deployment_id)


def _handler(index: Index, registry: Registry, recheck_margin: float = EXACT_RECHECK_MARGIN) -> MatchHandler:
    return MatchHandler(index, registry, TOP_K, recheck_margin)  # as lfr_match.app.build makes it


def _embedded(
    registry: Registry,
    deployment_id: str,
    *faces: tuple[np.ndarray, str, float],
    t: float = T0,
    camera: str = "cam-1",
    sequence: int = 0,
    model_id: str = MODEL,
) -> Incoming:
    """A faces.embedded.v1 record of `faces` (vector, track id, shot quality), sealed with the key."""
    key = registry.views[deployment_id].data_key or sealing.new_data_key()
    ref = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id=camera)
    message = embeddings_pb2.FacesEmbedded(camera=ref, sequence=sequence, model_id=model_id, dimension=DIMENSION)
    message.captured_at.FromNanoseconds(int(t * 1e9))
    for i, (vector, track_id, quality) in enumerate(faces):
        message.faces.add(
            index=i,
            embedding=sealing.seal(key, np.asarray(vector, "<f4").tobytes(), deployment_id),
            crop=sealing.seal(key, f"crop-{sequence}-{i}".encode(), deployment_id),
            track_id=track_id,
            shot_quality=quality,
            scene=common_pb2.SceneImage(
                status=common_pb2.SCENE_STATUS_COMPOSED,
                image=sealing.seal(key, f"scene-{sequence}-{i}".encode(), deployment_id),
            ),
        )
    return Incoming(message, ConsumerRecord("faces", 0, sequence, 0, 0, None, b"", None, 0, 0, []))


async def _matches(handler: MatchHandler, *records: Incoming) -> list:
    """The MatchFound messages the records gave, in order."""
    found = []
    for outcome in await handler.handle(list(records)):
        assert isinstance(outcome, list), outcome
        assert all(output.topic is MATCHES_FOUND for output in outcome)
        found += [output.message for output in outcome]
    return found


async def test_a_face_at_or_above_the_threshold_matches_signed_and_sealed_and_the_rest_are_only_counted():
    index, registry = Index(), Registry()
    deployment_id, key = registry.open(threshold=0.69)
    index.add(deployment_id, "S1", E[0], entry_id="entry-s1")
    index.add(deployment_id, "S2", E[5])
    record = _embedded(registry, deployment_id, (_towards(0.9, E[1]), "", 0), (E[9], "", 0), sequence=4)
    [outcome] = await _handler(index, registry).handle([record])
    [output] = outcome
    match = output.message
    assert output.key == camera_key(record.message.camera)
    assert (match.subject_id, match.face_index, match.sequence) == ("S1", 0, 4)
    assert match.score == pytest.approx(0.9, abs=1e-5) and match.threshold == pytest.approx(0.69)
    assert [(c.subject_id, c.entry_id) for c in match.candidates] == [("S1", "entry-s1")]
    assert match.model_id == MODEL and match.shots == 1
    assert match.match_id == f"{deployment_id}/van-1/cam-1/{int(T0 * 1e9)}/4/0"  # capture time in the id
    # The probe's crop goes on sealed, as detect sealed it; the match is signed with the deployment's key.
    assert match.probe_crop == record.message.faces[0].crop
    assert sealing.unseal(key, match.probe_crop, deployment_id) == b"crop-4-0"
    # Its scene likewise, and of the matched face only: the other face's goes no further.
    assert match.scene == record.message.faces[0].scene
    assert sealing.unseal(key, match.scene.image, deployment_id) == b"scene-4-0"
    assert sealing.verify_message(key, match, "match")
    swapped = embeddings_pb2.FacesEmbedded().faces.add().scene  # any other scene: the signature covers it
    tampered = type(match).FromString(match.SerializeToString())
    tampered.scene.CopyFrom(swapped)
    assert not sealing.verify_message(key, tampered, "match")
    match.score = 0.99
    assert not sealing.verify_message(key, match, "match")
    # Both faces were compared, for the false-alert rate per face scanned and the deployment's report.
    assert metrics.FACES_SCANNED.labels(deployment_id, "van-1", "cam-1")._value.get() == 2
    assert metrics.MATCHES.labels(deployment_id, "van-1", "cam-1")._value.get() == 1
    counts = registry.client.hashes[registry.keys.deployment(deployment_id)]
    assert counts == {"stats:faces_scanned": 2, "stats:faces_scanned@van-1": 2}


async def test_each_deployment_decides_at_its_own_threshold():
    index, registry = Index(), Registry()
    low, _ = registry.open(threshold=0.69)
    high, _ = registry.open(threshold=0.80)
    for deployment_id in (low, high):
        index.add(deployment_id, "S1", E[0])
    probe = _towards(0.75, E[1])
    handler = _handler(index, registry)
    assert [m.subject_id for m in await _matches(handler, _embedded(registry, low, (probe, "", 0)))] == ["S1"]
    assert await _matches(handler, _embedded(registry, high, (probe, "", 0))) == []


async def test_vectors_of_another_model_or_malformed_ones_are_dead_lettered():
    index, registry = Index(), Registry()
    deployment_id, _ = registry.open()
    index.add(deployment_id, "S1", E[0])
    nan = E[0].copy()
    nan[3] = np.nan
    outcomes = await _handler(index, registry).handle(
        [
            _embedded(registry, deployment_id, (E[0], "", 0), model_id="arcface-r100"),
            _embedded(registry, deployment_id, (E[0][:64], "", 0)),  # 64 values, 128 announced
            _embedded(registry, deployment_id, (nan, "", 0)),
        ]
    )
    assert [(o.reason, "arcface-r100" in o.detail) for o in outcomes[:1]] == [("model_mismatch", True)]
    assert [o.reason for o in outcomes[1:]] == ["invalid_vector", "invalid_vector"]
    assert all(isinstance(o, Rejected) for o in outcomes) and index.searches == []


async def test_a_track_is_decided_on_its_shots_so_far_fused_into_one_template():
    index, registry = Index(), Registry()
    deployment_id, _ = registry.open(threshold=0.69)
    index.add(deployment_id, "S1", E[0])
    handler = _handler(index, registry)
    # Three shots of one pass, each at 0.6 to the enrolled photo (under the threshold alone) and
    # otherwise apart: their mean comes closer to it with every shot.
    shots = [_towards(0.6, E[i]) for i in (1, 2, 3)]
    found = []
    for i, shot in enumerate(shots):
        record = _embedded(registry, deployment_id, (shot, "detect-a:7", 0.5), t=T0 + i / 5, sequence=i)
        found.append(await _matches(handler, record))
    assert found[0] == []
    assert [(m.track_id, m.shots) for f in found[1:] for m in f] == [("detect-a:7", 2), ("detect-a:7", 3)]
    assert found[1][0].score == pytest.approx(0.6 / np.sqrt(0.36 + 0.64 / 2), abs=1e-4)  # 0.728
    assert found[2][0].score == pytest.approx(0.6 / np.sqrt(0.36 + 0.64 / 3), abs=1e-4)  # 0.792
    # A face without a track is decided on itself alone.
    assert await _matches(handler, _embedded(registry, deployment_id, (shots[0], "", 0.5), t=T0 + 0.6)) == []


async def test_a_tracks_shots_are_weighted_by_their_quality():
    index, registry = Index(), Registry()
    deployment_id, _ = registry.open(threshold=0.69)
    index.add(deployment_id, "S1", E[0])
    handler = _handler(index, registry)
    good, blink = _towards(0.9, E[1]), _towards(0.3, E[2])
    await _matches(handler, _embedded(registry, deployment_id, (good, "detect-a:1", 0.9)))
    [match] = await _matches(handler, _embedded(registry, deployment_id, (blink, "detect-a:1", 0.01), t=T0 + 0.8))
    # Equal weights would give 0.75; the poor shot barely moves the template.
    assert match.shots == 2 and match.score > 0.89


async def test_templates_are_per_camera_and_track_and_forgotten_by_capture_time_not_processing_time():
    index, registry = Index(), Registry()
    deployment_id, _ = registry.open(threshold=0.5)
    index.add(deployment_id, "S1", E[0])
    handler = _handler(index, registry)
    shot = _towards(0.9, E[1])

    async def shots(t: float, camera: str = "cam-1", track: str = "detect-a:1") -> int:
        [match] = await _matches(handler, _embedded(registry, deployment_id, (shot, track, 0.5), t=t, camera=camera))
        return match.shots

    # Captured long ago (a backlog processed late): still one pass, decided on both shots.
    assert [await shots(T0), await shots(T0 + 0.2)] == [1, 2]
    assert await shots(T0 + 0.4, camera="cam-2") == 1  # the same track id on another camera: another pass
    assert await shots(T0 + 0.4, track="detect-b:1") == 1  # another detect process's track
    assert await shots(T0 + 0.6) == 3
    assert await shots(T0 + 0.6 + 31) == 1  # 31 s of capture time without a shot: forgotten
    assert len(handler.templates) == 1  # the passes idle that long are gone from memory


async def test_a_closed_deployments_templates_are_forgotten_when_its_next_record_is_skipped():
    index, registry = Index(), Registry()
    closing, _ = registry.open()
    staying, _ = registry.open()
    for deployment_id in (closing, staying):
        index.add(deployment_id, "S1", E[0])
    handler = _handler(index, registry)
    for deployment_id in (closing, staying):
        await _matches(handler, _embedded(registry, deployment_id, (E[0], "detect-a:1", 0.5)))
    assert len(handler.templates) == 2
    late = _embedded(registry, closing, (E[0], "detect-a:1", 0.5), t=T0 + 0.2)
    registry.close(closing)
    assert await handler.handle([late]) == [Skipped("deployment_closed")]
    assert len(handler.templates) == 1  # only the open deployment's track is held
    [match] = await _matches(handler, _embedded(registry, staying, (E[0], "detect-a:1", 0.5), t=T0 + 0.2))
    assert match.shots == 2


@pytest.mark.parametrize(("margin", "matched"), [(EXACT_RECHECK_MARGIN, True), (0.0, False)])
async def test_a_best_score_just_under_the_threshold_is_rechecked_exactly_within_the_stages_margin(margin, matched):
    index, registry = Index(), Registry()
    deployment_id, _ = registry.open(threshold=0.69)
    index.add(deployment_id, "S1", _towards(0.72, E[1]), entry_id="near")
    index.add(deployment_id, "S1", _towards(0.66, E[2]), entry_id="far")
    index.missed.add("near")  # the approximate index misses the photo that matches
    found = await _matches(
        _handler(index, registry, recheck_margin=margin), _embedded(registry, deployment_id, (E[0], "", 0))
    )
    assert [(m.subject_id, m.candidates[0].entry_id) for m in found] == ([("S1", "near")] if matched else [])
    assert (True, None) in index.searches if matched else index.searches == [(False, None)]


async def test_a_match_carries_its_runner_up_scored_on_the_same_fused_template():
    index, registry = Index(), Registry()
    deployment_id, _ = registry.open(threshold=0.69)
    for i in range(TOP_K):  # every one of the top k is a photo of S1: the runner-up needs one more search
        index.add(deployment_id, "S1", _towards(0.99 - i / 100, E[10 + i]))
    brother = _towards(0.8, E[1])
    index.add(deployment_id, "S2", brother)
    handler = _handler(index, registry)
    first, second = _towards(0.9, E[1]), _towards(0.9, E[2])
    await _matches(handler, _embedded(registry, deployment_id, (first, "detect-a:1", 0.5)))
    [match] = await _matches(handler, _embedded(registry, deployment_id, (second, "detect-a:1", 0.5), t=T0 + 0.8))
    fused = (first + second) / np.linalg.norm(first + second)
    assert match.shots == 2 and match.subject_id == "S1"
    assert match.runner_up_subject_id == "S2"
    assert match.runner_up_score == pytest.approx(float(fused @ brother), abs=1e-5)
    assert match.score == pytest.approx(0.99 * float(fused @ E[0]), abs=1e-5)  # S1's best photo, same template
    assert (False, "S1") in index.searches  # the one more search, of every other subject's entries


async def test_a_watchlist_of_one_subject_gives_no_runner_up():
    index, registry = Index(), Registry()
    deployment_id, _ = registry.open(threshold=0.69)
    index.add(deployment_id, "S1", E[0])
    [match] = await _matches(_handler(index, registry), _embedded(registry, deployment_id, (E[0], "", 0)))
    assert (match.runner_up_subject_id, match.runner_up_score) == ("", 0.0)


async def test_a_deployment_not_yet_in_this_replicas_copy_matches_nothing_but_its_faces_are_counted():
    index, registry = Index(), Registry()
    deployment_id, _ = registry.open()  # open, but no collection in the index yet
    assert await _matches(_handler(index, registry), _embedded(registry, deployment_id, (E[0], "", 0))) == []
    assert metrics.FACES_SCANNED.labels(deployment_id, "van-1", "cam-1")._value.get() == 1
