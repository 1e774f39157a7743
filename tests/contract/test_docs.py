"""Docs that must match the code, and a README a newcomer reads in five minutes."""

import re
from pathlib import Path

import pytest

from lfr_cli.settings_doc import main as settings_doc

ROOT = Path(__file__).resolve().parents[2]
README_LIMIT = 12 * 1024
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "services").glob("*/README.md"))]


def test_every_service_readme_lists_its_settings_as_the_code_defines_them():
    assert settings_doc(["--check"]) == 0, "run `make docs`"


def test_the_readme_is_short_and_shows_the_two_commands_the_pipeline_and_the_map_of_docs():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= README_LIMIT, f"README.md is {len(text.encode())} bytes: details belong in docs/"
    first_screen = text[: text.index("## Where to read on") + 2000]
    assert "make demo" in first_screen and "make test" in first_screen and "ingest" in first_screen
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in text, f"the README's map does not name docs/{page.name}"


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    out = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def broken_links(doc: Path) -> list[str]:
    """Relative links of a Markdown file whose file, or heading, does not exist."""
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in _anchors(file)):
            broken.append(target)
    return broken


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(doc):
    assert not broken_links(doc), f"{doc.relative_to(ROOT)}: links to nothing: {broken_links(doc)}"


def test_the_link_check_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A title\n\n[fine](#a-title), [gone](missing.md), [no heading](#nowhere)\n")
    assert broken_links(page) == ["missing.md", "#nowhere"]
