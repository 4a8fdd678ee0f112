"""The harness end to end: a resident signs up through the API, the worker mails the
confirmation link through the SMTP sandbox, and the link is opened and confirmed in
Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from subscribers import services
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.browser

ADDRESS = "jan@example.com"


def _link(stack: RunningStack, mail: EmailMessage, path: str) -> str:
    text = mail.get_body(preferencelist=("plain",))
    assert text is not None, mail
    body = text.get_content()
    found = re.search(re.escape(f"{stack.base_url}{path}") + r"\S+", body)
    assert found is not None, body
    return found.group(0)


def test_a_resident_confirms_the_mailed_link_in_the_browser(
    stack: RunningStack, browser: webdriver.Chrome, shot: Callable[[str], Path]
) -> None:
    answer = httpx.post(
        f"{stack.base_url}/residents/subscribe",
        json={
            "contacts": [{"channel": "email", "address": ADDRESS}],
            "topics": ["weather-warning"],
            "districts": ["mokotow"],
            "language": "pl",
        },
    )
    assert answer.status_code == 202, answer.text

    (confirmation,) = stack.wait_for_mails(ADDRESS)
    browser.get(_link(stack, confirmation, "/residents/confirm/"))
    # Opening the link (as a mail scanner would) confirms nothing: a person presses the button.
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Potwierdź adres e-mail")
    assert shot("confirm-page").stat().st_size > 0
    with stack.sessions() as session:
        point = services.find_contact(session=session, channel="email", address=ADDRESS)
        assert point is not None
        assert point.verified_at is None

    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, 10).until(
        expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Adres potwierdzony")
    )
    assert shot("confirmed").stat().st_size > 0
    with stack.sessions() as session:
        point = services.find_contact(session=session, channel="email", address=ADDRESS)
        assert point is not None
        assert point.verified_at is not None
    # Confirmed, the resident is sent the link to manage their alerts.
    _, manage = stack.wait_for_mails(ADDRESS, count=2)
    assert _link(stack, manage, "/")
