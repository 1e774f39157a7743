"""The history a newcomer skims: every commit since this check was added has a subject of at most 72
characters and a body saying why (issue 27, item 8). Checked on the commits a clone holds."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The last commit before the rule: older subjects (some of 700 characters) are left as they are.
SINCE = "2692b8a"
SUBJECT_LIMIT = 72


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def _commits() -> list[tuple[str, str, str]]:
    """(hash, subject, body) of each commit after SINCE (the last commit only in a shallow clone)."""
    if not (ROOT / ".git").exists():
        pytest.fail("not a git checkout: the history cannot be checked (clone the repository)")
    known = subprocess.run(["git", "cat-file", "-e", f"{SINCE}^{{commit}}"], cwd=ROOT, capture_output=True)
    span = [f"{SINCE}..HEAD"] if known.returncode == 0 else ["-1"]
    out = _git("log", "--no-merges", "--format=%h%x1f%s%x1f%b%x1e", *span)
    return [tuple(part.strip() for part in entry.split("\x1f")) for entry in out.split("\x1e") if entry.strip()]


def test_every_commit_subject_is_at_most_72_characters():
    long = [(h, len(s), s) for h, s, _ in _commits() if len(s) > SUBJECT_LIMIT]
    assert not long, f"subjects over {SUBJECT_LIMIT} characters (say what changed; the why goes in the body): {long}"


def test_every_commit_has_a_body_with_the_why():
    bare = [(h, s) for h, s, body in _commits() if not body]
    assert not bare, f"commits without a body (why, and the figures): {bare}"
