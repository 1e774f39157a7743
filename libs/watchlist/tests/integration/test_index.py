"""Both watchlist index adapters behave alike: the embedded engine and the Qdrant client."""

import uuid

import numpy as np
import pytest

from lfr_watchlist import CollectionMissing, Entry
from lfr_watchlist.edge import EdgeIndex
from lfr_watchlist.server import ServerIndex
from lfr_watchlist.templates import subject_templates

pytestmark = pytest.mark.integration


def _entry(vector, subject):
    return Entry(str(uuid.uuid4()), vector, subject, "wanted", "ref", "approver", 0.0, "sha")


@pytest.fixture(params=["edge", "qdrant-client"])
def index(request, tmp_path):
    # The client adapter runs against qdrant-client's local mode here: the same API a server speaks.
    made = EdgeIndex(tmp_path) if request.param == "edge" else ServerIndex.connect(":memory:")
    yield made
    made.close()


def test_collections_are_created_searched_counted_and_dropped(index):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(50, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index.create("dep-a", 128)
    index.create("dep-b", 128)
    index.upsert("dep-a", [_entry(v, f"s{i}") for i, v in enumerate(vectors)])
    index.optimize("dep-a")
    assert index.count("dep-a") == 50 and index.count("dep-b") == 0
    hits = index.search("dep-a", vectors[7], 3)
    assert hits[0].subject_id == "s7" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert [h.entry_id for h in index.search("dep-a", vectors[7], 3, exact=True)] == [h.entry_id for h in hits]
    # One subject's entries, or every other subject's (a match's runner-up when its top k are all one person).
    assert [h.subject_id for h in index.search("dep-a", vectors[7], 3, subject_id="s9")] == ["s9"]
    others = index.search("dep-a", vectors[7], 2, except_subject_id="s7")
    assert [h.entry_id for h in others] == [h.entry_id for h in hits[1:3]]
    index.delete("dep-a", [hits[0].entry_id])  # an enrolment undone
    assert index.count("dep-a") == 49 and index.search("dep-a", vectors[7], 1)[0].subject_id != "s7"
    assert index.collections() == ["dep-a", "dep-b"]
    assert index.drop("dep-a") == 49
    assert index.collections() == ["dep-b"] and not index.exists("dep-a")
    with pytest.raises(CollectionMissing):
        index.search("dep-a", vectors[0], 1)
    assert index.drop("dep-a") == 0  # dropping twice is harmless


def test_embedded_watchlists_survive_a_restart_of_match(tmp_path):
    vector = np.ones(128, np.float32) / np.sqrt(128)
    first = EdgeIndex(tmp_path)
    first.create("dep-a", 128)
    first.upsert("dep-a", [_entry(vector, "kept")])
    first.close()
    second = EdgeIndex(tmp_path)
    assert second.search("dep-a", vector, 1)[0].subject_id == "kept"
    second.close()


def test_a_subjects_template_is_listed_apart_from_its_photos_and_its_hit_names_the_first_photo(index):
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(3, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    photos = [
        Entry(str(uuid.uuid4()), vectors[i], subject, "wanted", f"ref-{i}", "approver", float(i), "sha")
        for i, subject in enumerate(("s1", "s1", "s2"))
    ]
    index.create("dep-a", 128)
    index.upsert("dep-a", photos)
    [template] = subject_templates("dep-a", index.entries("dep-a"))
    index.upsert("dep-a", [template])
    assert index.count("dep-a") == 4 and index.count("dep-a", templates=False) == 3
    stored = {e.entry_id: e for e in index.entries("dep-a")}
    assert set(stored) == {p.entry_id for p in photos} | {template.entry_id}
    assert stored[template.entry_id].template_of == 2 and stored[photos[2].entry_id].template_of == 0
    np.testing.assert_allclose(stored[photos[1].entry_id].vector, vectors[1], atol=1e-6)
    # Its search hit names the subject's first photo: the reference image an officer is shown.
    hit = index.search("dep-a", template.vector, 1, exact=True)[0]
    assert (hit.entry_id, hit.subject_id, hit.score) == (photos[0].entry_id, "s1", pytest.approx(1.0, abs=1e-4))
    # Built again (another review), the template replaces itself.
    index.upsert("dep-a", subject_templates("dep-a", index.entries("dep-a")))
    assert index.count("dep-a") == 4
