"""The core actions with JavaScript switched off, and the residents' pages on a phone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as shown
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from tests.conftest import add_resident
from tests.e2e.conftest import RunningStack, cut_text, eventually

pytestmark = pytest.mark.browser

PHONE_SCREEN = (390, 844)
# The start page with its stylesheet and script, as sent: a phone on a slow line must
# not wait on a framework.
MOST_BYTES = 60_000


def settled(browser: webdriver.Chrome, title: str) -> None:
    """Wait for the page the last click asked for, by its heading."""
    WebDriverWait(browser, 20).until(
        shown.text_to_be_present_in_element((By.TAG_NAME, "h1"), title)
    )


def test_a_resident_signs_up_and_an_operator_previews_without_scripts(
    stack: RunningStack, scriptless_browser: webdriver.Chrome
) -> None:
    browser = scriptless_browser
    browser.get(stack.base_url)
    # Our script marks the page when it runs: here it must not have.
    assert "js" not in (browser.find_element(By.TAG_NAME, "html").get_attribute("class") or "")
    browser.find_element(By.ID, "email").send_keys("anna@example.com")
    browser.find_element(By.CSS_SELECTOR, "input[name=topics][value=water-outage]").click()
    browser.find_element(By.CSS_SELECTOR, "label.d-wola").click()
    browser.find_element(By.CSS_SELECTOR, "form.card button.primary").click()
    settled(browser, "Prawie gotowe")
    eventually(lambda: stack.mails_to("anna@example.com"), "the confirmation e-mail")

    with stack.sessions.begin() as session:
        add_resident(
            session,
            stack.settings,
            contacts=[("sms", "+48601000001")],
            topics=["water-outage"],
            districts=["wola"],
        )
    token = stack.staff_token("anna", "operator")
    browser.get(f"{stack.base_url}/console/sign-in")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    settled(browser, "Alerty")
    browser.get(f"{stack.base_url}/console/alerts/new")
    Select(browser.find_element(By.ID, "topic")).select_by_value("water-outage")
    browser.find_element(By.CSS_SELECTOR, "label.d-wola").click()
    browser.find_element(By.ID, "title_pl").send_keys("Brak wody")
    browser.find_element(By.ID, "body_pl").send_keys("Awaria wodociągu do 16:00.")
    browser.find_element(By.CSS_SELECTOR, "button[value=preview]").click()
    WebDriverWait(browser, 20).until(shown.text_to_be_present_in_element((By.ID, "preview"), "PLN"))
    preview = browser.find_element(By.ID, "preview").text
    assert "Brak wody" in preview and "Wola" in preview
    browser.find_element(By.CSS_SELECTOR, "button[value=save]").click()
    WebDriverWait(browser, 20).until(shown.url_matches(r"/console/alerts/\d+$"))
    browser.find_element(By.XPATH, "//button[contains(., 'Wyślij do zatwierdzenia')]").click()
    WebDriverWait(browser, 20).until(
        shown.text_to_be_present_in_element((By.ID, "status"), "czeka na zatwierdzenie")
    )


def test_the_residents_pages_fit_a_phone_and_weigh_little(
    stack: RunningStack,
    browser: webdriver.Chrome,
    shot: Callable[[str], Path],
    accessible: Callable[[], None],
) -> None:
    browser.set_window_size(*PHONE_SCREEN)
    for path, name in (
        ("/", "phone-start"),
        ("/confirm", "phone-confirm"),
        ("/link", "phone-link"),
    ):
        browser.get(stack.base_url + path)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow} px on a phone"
        cut = cut_text(browser)
        assert not cut, f"{path}: text wider than its box on a phone: {cut}"
        accessible()
        shot(name)
    sent = browser.execute_script(
        "const page = performance.getEntriesByType('navigation')[0];"
        "return [page, ...performance.getEntriesByType('resource')]"
        ".reduce((sum, entry) => sum + entry.encodedBodySize, 0)"
    )
    assert 0 < sent < MOST_BYTES, sent
