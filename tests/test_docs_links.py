"""The README and docs/ link only to what a clone of the repository has.

Links are read with the same Markdown parser that renders /docs/, so a link inside a code block is not
a link, and a fragment (`operations.md#tenants`) must name a heading that the rendered page has.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from flk_project.pages import markdown_renderer
from tests.support.servers import ROOT

DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
# Addresses of the local server a README may show; anything else with a scheme leaves the repository.
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _links(path: Path) -> list[str]:
    """Every link and image target of a Markdown file, in document order."""
    found = []
    stack = list(markdown_renderer.parse(path.read_text(encoding="utf-8")))
    while stack:
        token = stack.pop(0)
        if token.type == "link_open":
            found.append(str(token.attrGet("href")))
        elif token.type == "image":
            found.append(str(token.attrGet("src")))
        stack[0:0] = token.children or []
    return found


def _heading_ids(path: Path) -> set[str]:
    ids = set()
    for token in markdown_renderer.parse(path.read_text(encoding="utf-8")):
        if token.type == "heading_open" and token.attrGet("id"):
            ids.add(str(token.attrGet("id")))
    return ids


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("document", DOCUMENTS, ids=_name)
def test_relative_links_resolve_inside_the_repository(document: Path):
    broken = []
    for href in _links(document):
        parts = urlsplit(href)
        if parts.scheme or parts.netloc:
            continue
        target = (document.parent / unquote(parts.path)).resolve() if parts.path else document
        if not target.is_relative_to(ROOT) or not target.exists():
            broken.append(f"{href} (no such file in the repository)")
        elif parts.fragment and target.suffix == ".md" and parts.fragment not in _heading_ids(target):
            broken.append(f"{href} (no heading #{parts.fragment} in {_name(target)})")
    assert not broken, f"{_name(document)}: {broken}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=_name)
def test_nothing_points_at_files_outside_the_repository(document: Path):
    text = document.read_text(encoding="utf-8")
    assert "../shared" not in text, f"{_name(document)} refers to ../shared, which a clone does not have"
    assert not [href for href in _links(document) if "../shared" in href]


def test_readme_links_stay_in_the_repository():
    leaving = [
        href
        for href in _links(ROOT / "README.md")
        if urlsplit(href).scheme and urlsplit(href).hostname not in LOCAL_HOSTS
    ]
    assert not leaving, f"README.md links outside the repository: {leaving}"


def test_the_checker_sees_links_and_ignores_code(tmp_path: Path):
    sample = tmp_path / "sample.md"
    sample.write_text(
        "# Title\n\nSee [a](a.md#part) and ![b](img/b.png).\n\n"
        "```sh\n[not](a link.md)\n```\n\n`[nor](this.md)`\n"
    )
    assert _links(sample) == ["a.md#part", "img/b.png"]
    assert _heading_ids(sample) == {"title"}
