import numpy as np

from lfr_watchlist import Hit, search_for_decision, with_runner_up


class RecordingIndex:
    """A fake WatchlistIndex: approximate and exact answers given, calls recorded."""

    def __init__(self, approximate: float, exact: float) -> None:
        self.scores = {False: approximate, True: exact}
        self.calls: list[bool] = []

    def search(self, deployment_id, vector, k, exact=False):
        self.calls.append(exact)
        return [Hit("e1", "S1", "wanted", self.scores[exact])]


def _search(index, threshold=0.69, margin=0.05):
    return search_for_decision(index, "dep-a", np.zeros(128, np.float32), 5, threshold, margin)


def test_a_best_score_just_below_the_threshold_is_rechecked_exactly():
    index = RecordingIndex(approximate=0.66, exact=0.70)  # the index missed the entry that matches
    assert _search(index)[0].score == 0.70 and index.calls == [False, True]


def test_far_below_or_above_the_threshold_the_index_answer_stands():
    for score in (0.40, 0.639, 0.69, 0.95):
        index = RecordingIndex(approximate=score, exact=0.99)
        assert _search(index)[0].score == score and index.calls == [False]


class OneSubjectFirst:
    """A fake WatchlistIndex whose top k are all photos of one subject; another subject is further down."""

    def __init__(self) -> None:
        self.excluded: list[str | None] = []

    def search(self, deployment_id, vector, k, exact=False, subject_id=None, except_subject_id=None):
        self.excluded.append(except_subject_id)
        if except_subject_id:
            return [Hit("e9", "S2", "wanted", 0.71)]
        return [Hit(f"e{i}", "S1", "wanted", 0.80 - i / 100) for i in range(k)]


def test_a_match_whose_top_k_are_one_subject_gets_its_runner_up_by_one_more_search():
    index = OneSubjectFirst()
    vector = np.zeros(128, np.float32)
    hits = with_runner_up(index, "dep-a", vector, index.search("dep-a", vector, 5), 5, 0.69)
    assert [h.subject_id for h in hits] == ["S1"] * 5 + ["S2"] and index.excluded == [None, "S1"]


def test_no_further_search_when_the_runner_up_is_in_the_top_k_or_nothing_matched():
    index = OneSubjectFirst()
    vector = np.zeros(128, np.float32)
    mixed = [Hit("e1", "S1", "wanted", 0.8), Hit("e2", "S2", "wanted", 0.7)]
    assert with_runner_up(index, "dep-a", vector, mixed, 2, 0.69) == mixed
    below = [Hit(f"e{i}", "S1", "wanted", 0.5) for i in range(5)]
    assert with_runner_up(index, "dep-a", vector, below, 5, 0.69) == below
    fewer = [Hit("e1", "S1", "wanted", 0.8)]  # fewer than k entries: there is no other subject
    assert with_runner_up(index, "dep-a", vector, fewer, 5, 0.69) == fewer
    assert index.excluded == []
