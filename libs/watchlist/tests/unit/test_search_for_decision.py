import numpy as np

from lfr_watchlist import Hit, search_for_decision


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
