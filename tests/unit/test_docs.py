"""The README and docs/ hold together: the README fits on a screen or two, links resolve.

A reader who follows a link from the README into docs/ (or back) must land on a
file that exists and on the heading the link names; a README that grows back into
a reference manual fails here. The machine-flag rule table the contract asks the
README for is held to the code's rules. Pure: reads the markdown, no database.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.engagement import RULES

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 300

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:")


def prose(page: Path) -> str:
    """The page without its fenced code blocks, where `#` lines are comments, not headings."""
    kept, fenced = [], False
    for line in page.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return "\n".join(kept)


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped,
    spaces as hyphens, a repeated heading numbered."""
    found: set[str] = set()
    repeats: dict[str, int] = {}
    for line in prose(page).splitlines():
        if heading := HEADING.match(line):
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
            repeats[slug] = repeats.get(slug, -1) + 1
            found.add(f"{slug}-{repeats[slug]}" if repeats[slug] else slug)
    return found


def relative_links(page: Path) -> list[str]:
    """The targets of the page's links and images that stay in this checkout."""
    text = re.sub(r"`[^`\n]*`", "", prose(page))
    return [target for target in LINK.findall(text) if not SCHEME.match(target)]


def test_readme_fits_on_a_screen_or_two() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move reference to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_reach_a_file_and_heading(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.is_file():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    assert not broken, f"{page.name}: {broken}"


def test_readme_machine_rules_are_the_code_rules() -> None:
    block = re.search(
        r"<!-- machine-rules -->(.*?)<!-- /machine-rules -->", README.read_text(), re.S
    )
    assert block, "README.md lost its machine-flag rule table"
    rows = [
        [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        for line in block.group(1).strip().splitlines()[2:]
    ]
    assert {rule: int(version) for rule, version, *_ in rows} == {
        rule.id: rule.version for rule in RULES.values()
    }
    static = [RULES[rule].static for rule, *_ in rows]
    assert static == sorted(static, reverse=True), "the README lists the static rules first"
