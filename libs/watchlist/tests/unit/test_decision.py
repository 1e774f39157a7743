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


def test_the_runner_up_is_the_best_of_another_subject_not_another_photo_of_the_same():
    hits = [_hit("a", 0.80), Hit("a-2", "a", "wanted", 0.78), _hit("b", 0.74), _hit("c", 0.50)]
    decision = decide(hits, 0.69)
    assert decision.best.subject_id == "a" and decision.runner_up.subject_id == "b"
    assert decision.runner_up.score == 0.74  # scored as the best is: the same probe, another subject


def test_a_watchlist_of_one_subject_has_no_runner_up():
    assert decide([_hit("a", 0.80), Hit("a-2", "a", "wanted", 0.70)], 0.69).runner_up is None
