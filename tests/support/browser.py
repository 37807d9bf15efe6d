"""Headless Debian chromium for the admin's browser tests, and where their screenshots go."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Page

from tests.support.servers import ROOT

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags chromium keeps calling out of this closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("FLK_TEST_ARTIFACTS", ROOT / "test-artifacts"))


def save_screenshot(page: Page, folder: str, name: str) -> None:
    """Save a full-page screenshot as ``<artifacts>/<folder>/<name>.png``."""
    target = ARTIFACTS / folder
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / f"{name}.png"), full_page=True)
