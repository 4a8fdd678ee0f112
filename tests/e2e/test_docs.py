"""The API's documentation pages in Chromium: both render the whole description from
files served here, under the policy the server sends (no CDN is reachable from here)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from broadcaster.dev.stack import bound_socket, serve_api
from broadcaster.http.app import create_app
from broadcaster.settings import load_settings
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.browser


@pytest.fixture
def docs_server(tmp_path: Path) -> Iterator[str]:
    settings = load_settings(
        {"WSP_ENV": "test", "WSP_DATA_DIR": str(tmp_path), "WSP_SECRET_KEY": TEST_SECRET}
    )
    with bound_socket() as sock, serve_api(create_app(settings), sock) as base:
        yield base


def _wait_for(browser: webdriver.Chrome, selector: str, at_least: int) -> int:
    deadline = time.monotonic() + 20
    found = 0
    while time.monotonic() < deadline:
        found = len(browser.find_elements(By.CSS_SELECTOR, selector))
        if found >= at_least:
            break
        time.sleep(0.2)
    return found


def test_swagger_ui_shows_every_operation(
    browser: webdriver.Chrome, docs_server: str, shot: Callable[[str], Path]
) -> None:
    browser.get(f"{docs_server}/docs")
    assert _wait_for(browser, ".opblock", 30) >= 30
    assert (
        "Warszawski System Powiadomień"
        in browser.find_element(By.CSS_SELECTOR, ".info .title").text
    )
    shot("docs")


def test_redoc_shows_every_tag_and_searches(
    browser: webdriver.Chrome, docs_server: str, shot: Callable[[str], Path]
) -> None:
    browser.get(f"{docs_server}/redoc")
    assert _wait_for(browser, "h1", 1) >= 1
    assert "Warszawski System Powiadomień" in browser.find_element(By.CSS_SELECTOR, "h1").text
    # Its own styles got in (with the page's nonce): the side menu is laid out beside.
    menu = browser.find_element(By.CSS_SELECTOR, ".menu-content")
    assert menu.value_of_css_property("position") in ("sticky", "fixed")
    # The search index runs in a worker the policy lets it start.
    browser.find_element(By.CSS_SELECTOR, "input[placeholder^='Search']").send_keys("subscribe")
    assert _wait_for(browser, "[data-role='search:results'] li", 1) >= 1
    shot("redoc")
