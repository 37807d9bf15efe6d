"""What a newcomer meets first: the landing page, the API reference, the docs, a styled admin.

The browser is real headless chromium; the servers are pytest's live server and, at the end, the real
`make run` script (gunicorn, a Celery worker and beat) started on a free port.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, save_screenshot
from tests.support.make_run import make_run

SHOTS = "first-contact"
# Schemes whose "requests" never touch the network: inline images and fonts, Swagger UI's own blobs.
LOCAL_SCHEMES = {"data", "blob", "about"}


def _links(page) -> list[str]:
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    return sorted({href for href in hrefs if not href.startswith("#")})


def test_landing_page_links_all_answer(page, live_server):
    response = page.goto("/")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    assert page.locator("h1").inner_text() == "FLK"
    save_screenshot(page, SHOTS, "landing")

    links = _links(page)
    for target in ("/api/docs/", "/v1/openapi.json", "/admin/", "/healthz", "/docs/"):
        assert target in links, f"the landing page has no link to {target}: {links}"
    for href in links:
        answer = page.goto(urljoin(live_server.url + "/", href))
        # The admin's index redirects a visitor to its login page; the page reached must be a 200.
        assert answer is not None and answer.status == 200, f"{href} answered {answer and answer.status}"


def test_api_reference_renders_operations_from_local_assets_only(page, live_server):
    host = urlsplit(live_server.url).netloc
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    response = page.goto("/api/docs/")
    assert response.status == 200
    submit = page.locator('.opblock-summary-path[data-path="/v1/pcs/submit"]')
    submit.first.wait_for(state="visible", timeout=20_000)
    assert "FLK API" in page.locator(".information-container").inner_text()
    save_screenshot(page, SHOTS, "api-reference")

    assert any(url.endswith("/v1/openapi.json") for url in requested), requested
    assert any("swagger-ui-bundle.js" in url for url in requested), requested
    foreign = [
        url for url in requested if urlsplit(url).scheme not in LOCAL_SCHEMES and urlsplit(url).netloc != host
    ]
    assert not foreign, f"the API reference page reached beyond {host}: {foreign}"


def test_docs_are_served_from_the_repository(page):
    index = page.goto("/docs/")
    assert index.status == 200
    titles = page.locator(".cards strong").all_inner_texts()
    assert "PCS protocol, version 0.1" in titles, titles
    save_screenshot(page, SHOTS, "docs-index")

    page.get_by_text("PCS protocol, version 0.1").click()
    page.wait_for_url(re.compile(r"/docs/protocol\.md$"))
    # The Markdown is rendered (tables, code, heading anchors), not shown as source.
    assert page.locator("article table").count() > 0
    assert page.locator("article h2#canonical-signing-payload").count() == 1
    save_screenshot(page, SHOTS, "docs-protocol")

    outside = page.goto("/docs/..%2FREADME.md")
    assert outside.status == 404


@pytest.mark.slow
def test_static_files_are_served_by_gunicorn_without_collectstatic(transactional_db, tenant):
    from tests.support.servers import gunicorn

    with gunicorn(workers=1) as server:
        css = httpx.get(f"{server.url}/static/admin/css/base.css", timeout=10)
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
        swagger = httpx.get(
            f"{server.url}/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js", timeout=10
        )
        assert swagger.status_code == 200
        assert "javascript" in swagger.headers["content-type"]


class _Assets(HTMLParser):
    """The stylesheets, scripts and icons a page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.urls.append(found["src"])
        elif tag == "link" and found.get("href") and found.get("rel") in ("stylesheet", "icon"):
            self.urls.append(found["href"])


def _assets(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


@pytest.mark.slow
def test_make_run_serves_the_landing_page_the_api_reference_and_a_styled_admin(tmp_path):
    from playwright.sync_api import sync_playwright

    with make_run(var_dir=tmp_path / "var") as run, httpx.Client(base_url=run.url, timeout=10) as http:
        css = http.get("/static/admin/css/base.css")
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")

        landing = http.get("/")
        assert landing.status_code == 200
        assert landing.headers["content-type"].startswith("text/html")
        assert "<h1>FLK</h1>" in landing.text

        reference = http.get("/api/docs/")
        assert reference.status_code == 200
        assets = _assets(reference.text)
        assert {urlsplit(a).path.rsplit("/", 1)[-1] for a in assets} >= {
            "swagger-ui.css",
            "swagger-ui-bundle.js",
            "swagger-ui-standalone-preset.js",
        }
        for asset in assets:
            assert not urlsplit(asset).netloc, f"the API reference loads {asset} from elsewhere"
            answer = http.get(asset)
            assert answer.status_code == 200, asset
            kind = "text/css" if asset.endswith(".css") else "javascript" if asset.endswith(".js") else ""
            assert kind in answer.headers["content-type"], (asset, answer.headers["content-type"])

        # What a newcomer sees: the admin's login page with its stylesheet applied, the API reference
        # rendered, and no request leaving the server.
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(base_url=run.url, viewport={"width": 1280, "height": 900})
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto("/admin/login/")
            header = page.eval_on_selector("#header", "e => getComputedStyle(e).backgroundColor")
            assert header not in ("rgba(0, 0, 0, 0)", "transparent"), "the admin is unstyled"
            save_screenshot(page, SHOTS, "make-run-admin-login")
            page.goto("/api/docs/")
            page.locator('.opblock-summary-path[data-path="/v1/pcs/submit"]').first.wait_for(timeout=20_000)
            save_screenshot(page, SHOTS, "make-run-api-reference")
            browser.close()
        foreign = [
            url
            for url in requested
            if urlsplit(url).scheme not in LOCAL_SCHEMES and urlsplit(url).netloc != run.bind
        ]
        assert not foreign, foreign
