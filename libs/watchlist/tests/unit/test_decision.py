from lfr_watchlist import Hit
from lfr_watchlist.decision import decide


def _hit(subject: str, score: float) -> Hit:
    return Hit(entry_id=subject, subject_id=subject, category="wanted", score=score)


def test_the_best_candidate_at_or_above_the_threshold_matches():
    decision = decide([_hit("b", 0.61), _hit("a", 0.72), _hit("c", 0.40)], 0.61)
    assert decision.matched and decision.best.subject_id == "a"
    assert [h.subject_id for h in decision.candidates] == ["a", "b"]  # at the threshold counts


def test_below_the_threshold_nothing_matches_but_the_best_is_known():
    decision = decide([_hit("a", 0.59)], 0.6)
    assert not decision.matched and decision.candidates == [] and decision.best.score == 0.59


def test_an_empty_watchlist_matches_nothing():
    assert decide([], 0.5).best is None
