"""A subject's template (gallery fusion): one per subject of two photos or more, the normalised mean of
its photos, referenced to its first photo, and carried whole over the watchlist log."""

import os

import numpy as np

from lfr.v1 import watchlist_pb2 as pb
from lfr_watchlist import Entry
from lfr_watchlist import log as changes
from lfr_watchlist.templates import most_entries, subject_templates, template_id


def _photo(entry_id: str, subject: str, vector, at: float) -> Entry:
    v = np.asarray(vector, np.float32)
    return Entry(entry_id, v / np.linalg.norm(v), subject, "wanted", f"ref-{entry_id}", "Insp. A", at, "sha")


def test_each_subject_of_two_photos_or_more_gets_one_template_and_a_subject_of_one_none():
    photos = [
        _photo("b", "s1", [0, 1, 0], 2.0),
        _photo("a", "s1", [1, 0, 0], 1.0),
        _photo("c", "s2", [0, 0, 1], 3.0),
    ]
    [template] = subject_templates("dep-1", photos)
    assert (template.subject_id, template.template_of, template.reference_entry_id) == ("s1", 2, "a")
    np.testing.assert_allclose(template.vector, [2**-0.5, 2**-0.5, 0], atol=1e-6)
    assert template.entry_id == template_id("dep-1", "s1") != template_id("dep-2", "s1")
    assert template.image_sha256 == "" and template.source_reference == "template of 2 photos"
    # Templates among the entries are not fused again: built twice, the same template.
    [again] = subject_templates("dep-1", [*photos, template])
    assert again.entry_id == template.entry_id and again.template_of == 2
    np.testing.assert_allclose(again.vector, template.vector)


def test_a_prediction_counts_the_templates_a_watchlist_may_hold():
    assert [most_entries(n) for n in (0, 1, 2, 3, 1000)] == [0, 1, 3, 4, 1500]


def test_a_template_crosses_the_watchlist_log_whole():
    key = os.urandom(32)
    [template] = subject_templates("dep-1", [_photo("a", "s1", [1, 0, 0], 1.0), _photo("b", "s1", [0, 1, 0], 2.0)])
    change = pb.WatchlistChanged.FromString(changes.upserted("dep-1", key, [template]).SerializeToString())
    [carried] = changes.entries(change, key)
    assert (carried.entry_id, carried.template_of, carried.reference_entry_id) == (template.entry_id, 2, "a")
    np.testing.assert_allclose(carried.vector, template.vector)


def test_no_photos_no_templates():
    assert subject_templates("dep-1", []) == []
