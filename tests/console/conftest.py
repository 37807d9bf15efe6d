"""Staff users for the console tests, and logging them in through the admin's login form."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from playwright.sync_api import Page, expect

PASSWORD = "a-long-console-passphrase"


def staff_user(username: str, *codenames: str) -> User:
    """A staff user (not a superuser) holding exactly the permissions named by codename."""
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def login(page: Page, username: str) -> None:
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#site-name")).to_contain_text("FLK verification layer")


@pytest.fixture
def wide_page(page: Page) -> Page:
    """The browser page at the width the admin must read well at: 1,400 px."""
    page.set_viewport_size({"width": 1400, "height": 900})
    return page
