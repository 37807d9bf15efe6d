"""Pages for people: the landing page at ``/`` and the project's own documentation under ``/docs/``.

The documentation is the Markdown in the repository's ``docs/`` directory, rendered on request, so the
running server and a clone of the repository always show the same text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt
from mdit_py_plugins.anchors import anchors_plugin

from flk_agent.pcs import PCS_VERSION
from flk_project.env import BASE_DIR

DOCS_DIR = BASE_DIR / "docs"

# CommonMark with tables, as the repository's viewers render it; raw HTML in a document is shown as
# text, not interpreted. Headings get GitHub-style ids, so links such as `operations.md#tenants` land.
markdown_renderer = MarkdownIt("commonmark", {"html": False}).enable("table").use(anchors_plugin, max_level=4)


@dataclass(frozen=True)
class Doc:
    """One Markdown document of ``docs/``: its path below ``docs/`` without ``.md``, and its title."""

    name: str
    title: str


def landing(request: HttpRequest) -> HttpResponse:
    """What a newcomer sees first: what FLK is and where everything is."""
    return render(
        request,
        "pages/landing.html",
        {"version": settings.SPECTACULAR_SETTINGS["VERSION"], "pcs_version": PCS_VERSION},
    )


def docs_index(request: HttpRequest) -> HttpResponse:
    """The list of documents in ``docs/``."""
    return render(request, "pages/docs_index.html", {"docs": docs_list()})


def docs_page(request: HttpRequest, name: str) -> HttpResponse:
    """One document of ``docs/`` rendered to HTML; 404 for anything outside that directory."""
    path = _doc_path(name)
    text = path.read_text(encoding="utf-8")
    # Safe to mark: the renderer escapes any HTML the Markdown contains and emits only its own tags.
    body = mark_safe(markdown_renderer.render(text))
    return render(request, "pages/doc.html", {"title": _title(text, name), "body": body})


def docs_list() -> list[Doc]:
    """Every document of ``docs/`` (subdirectories included), sorted by path."""
    docs = []
    for path in sorted(DOCS_DIR.rglob("*.md")):
        name = path.relative_to(DOCS_DIR).with_suffix("").as_posix()
        docs.append(Doc(name, _title(path.read_text(encoding="utf-8"), name)))
    return docs


def _doc_path(name: str) -> Path:
    # The URL pattern already refuses most names; resolving and checking the parent also stops `..`
    # and symbolic links that lead out of docs/.
    root = DOCS_DIR.resolve()
    path = (DOCS_DIR / f"{name}.md").resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise Http404(f"no document {name}.md")
    return path


def _title(text: str, fallback: str) -> str:
    """The first level-one heading of a Markdown text, or ``fallback``."""
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return fallback
