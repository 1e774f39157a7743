"""One vocabulary of reasons (lfr_contracts.reasons): the code uses no other, and every one is
documented where SREs look (docs/metrics.md)."""

import re
from pathlib import Path

import pytest

from lfr_contracts import reasons
from lfr_platform.stage import Rejected, Skipped

ROOT = Path(__file__).resolve().parents[2]
# Reasons as the code writes them: Rejected("x"), Skipped("x"), reason="x". (Those made from a
# variable are checked where they are made: Rejected and Skipped refuse an unknown reason.)
LITERALS = re.compile(r'(?:Rejected|Skipped)\(\s*"([a-z_]+)"|reason="([a-z_]+)"|\breason = "([a-z_]+)"')


def _sources():
    for folder in ("services", "libs/platform", "libs/faces"):
        for path in (ROOT / folder).rglob("*.py"):
            if "/tests/" not in str(path):
                yield path


def test_the_code_uses_only_the_catalogued_reasons():
    used = {}
    for path in _sources():
        for match in LITERALS.finditer(path.read_text()):
            reason = next(g for g in match.groups() if g)
            used.setdefault(reason, path.relative_to(ROOT))
    enrolment = set(_enrolment_reasons())
    unknown = {r: str(p) for r, p in used.items() if r not in reasons.REASONS and r not in enrolment}
    assert not unknown, f"reasons not in lfr_contracts.reasons: {unknown}"
    assert len(used) >= 15  # the pattern still finds them


def _enrolment_reasons():
    from lfr_deployments import wire  # the enrolment refusals, mapped onto the API's enum

    return wire.REASONS


def test_enrolment_and_detect_use_the_same_words_for_the_same_faults():
    assert set(reasons.FACE_DROPPED) - {"not_due", "not_better", "budget_spent"} <= set(_enrolment_reasons())


def test_every_reason_is_documented():
    text = (ROOT / "docs" / "metrics.md").read_text()
    missing = [r for r in reasons.REASONS if f"`{r}`" not in text and f" {r}," not in text and f" {r} " not in text]
    assert not missing, f"docs/metrics.md does not name: {missing}"


@pytest.mark.parametrize("outcome", [Rejected, Skipped])
def test_an_uncatalogued_reason_is_refused_where_it_is_made(outcome):
    with pytest.raises(ValueError, match="lfr_contracts.reasons"):
        outcome("some_new_reason")
