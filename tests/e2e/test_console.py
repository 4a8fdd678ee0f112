"""The console in Chromium against the whole running system: a resident signs up on
the district map and confirms the SMS code; an operator composes with the live preview
and submits; a second person approves; the progress reaches done; an auditor filters
the log and downloads the CSV; the sandbox viewer shows the SMS as a phone would.
Each page is saved as a screenshot in tests/artifacts/screenshots/."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as shown
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from tests.conftest import LONG_PL, add_resident
from tests.e2e.conftest import RunningStack, cut_text, eventually

pytestmark = pytest.mark.browser

Shot = Callable[[str], Path]
Check = Callable[[], None]
PHONE = "601 234 567"


def wait(browser: webdriver.Chrome, seconds: float = 20) -> WebDriverWait[webdriver.Chrome]:
    return WebDriverWait(browser, seconds)


def heading(browser: webdriver.Chrome) -> str:
    return str(browser.find_element(By.TAG_NAME, "h1").text)


def sign_in(browser: webdriver.Chrome, stack: RunningStack, token: str) -> None:
    browser.get(f"{stack.base_url}/console/sign-in")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    wait(browser).until(shown.url_to_be(f"{stack.base_url}/console"))


def sign_out(browser: webdriver.Chrome) -> None:
    browser.find_element(By.CSS_SELECTOR, ".who button").click()
    wait(browser).until(shown.url_contains("/console/sign-in"))


def sms_to(stack: RunningStack, number: str) -> list[str]:
    return [m["text"] for m in stack.sandbox.messages("smsapi") if m["address"] == number]


def test_a_resident_signs_up_on_the_map_and_confirms_the_sms_code(
    stack: RunningStack, browser: webdriver.Chrome, shot: Shot, accessible: Check
) -> None:
    browser.get(stack.base_url)
    assert heading(browser) == "Powiadomienia dla mieszkańców Warszawy"
    browser.find_element(By.ID, "phone").send_keys(PHONE)
    browser.find_element(By.CSS_SELECTOR, "input[name=topics][value=weather-warning]").click()
    for district in ("mokotow", "ursynow"):
        browser.find_element(By.CSS_SELECTOR, f"label.d-{district}").click()
    shot("sign-up")
    accessible()
    browser.find_element(By.CSS_SELECTOR, "form.card button.primary").click()
    wait(browser).until(shown.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Prawie gotowe"))
    shot("code-sent")
    accessible()

    text = eventually(lambda: sms_to(stack, "48601234567"), "the SMS with the code")[0]
    code = re.search(r"\b(\d{6})\b", text)
    assert code is not None, text
    browser.find_element(By.ID, "code").send_keys(code[1])
    browser.find_element(By.CSS_SELECTOR, "form.card button.primary").click()
    wait(browser).until(shown.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Potwierdzone"))
    shot("confirmed")
    accessible()

    # The SMS that follows carries the link to manage it all.
    manage = eventually(
        lambda: [t for t in sms_to(stack, "48601234567") if "/my/" in t], "the manage link"
    )[0]
    url = re.search(r"https?://\S+/my/\S+", manage)
    assert url is not None, manage
    browser.get(url[0])
    assert heading(browser) == "Moje powiadomienia"
    checked = browser.find_elements(By.CSS_SELECTOR, "input[name=districts]:checked")
    assert sorted(box.get_attribute("value") for box in checked) == ["mokotow", "ursynow"]
    shot("manage")
    accessible()


def test_an_alert_from_the_operator_through_approval_to_done_and_the_audit(
    stack: RunningStack, browser: webdriver.Chrome, shot: Shot, accessible: Check, tmp_path: Path
) -> None:
    with stack.sessions.begin() as session:
        for n in range(12):
            add_resident(
                session,
                stack.settings,
                contacts=[("sms", f"+4860100{n:04d}"), ("email", f"mieszkaniec{n}@example.com")],
                topics=["weather-warning"],
                districts=["wola" if n % 2 else "bemowo"],
            )
    operator = stack.staff_token("anna", "operator")
    approver = stack.staff_token("piotr", "approver")
    auditor = stack.staff_token("ewa", "auditor")

    # The operator writes it; the preview follows what she types.
    sign_in(browser, stack, operator)
    browser.get(f"{stack.base_url}/console/alerts/new")
    Select(browser.find_element(By.ID, "topic")).select_by_value("weather-warning")
    for district in ("wola", "bemowo"):
        browser.find_element(By.CSS_SELECTOR, f"label.d-{district}").click()
    browser.find_element(By.CSS_SELECTOR, "input[name=channels][value=push]").click()  # off
    browser.find_element(By.ID, "title_pl").send_keys("Ostrzeżenie IMGW: burze z gradem")
    browser.find_element(By.ID, "body_pl").send_keys("Silne burze od 18:00. Zostań w domu.")
    wait(browser).until(shown.text_to_be_present_in_element((By.ID, "preview"), "PLN"))
    preview = browser.find_element(By.ID, "preview").text
    assert "Ostrzeżenie IMGW: burze z gradem" in preview
    assert "Bemowo" in preview and "Wola" in preview
    assert "js" in (browser.find_element(By.TAG_NAME, "html").get_attribute("class") or "")
    assert not cut_text(browser)
    shot("compose-live-preview")
    accessible()
    browser.find_element(By.CSS_SELECTOR, "button[value=save]").click()
    wait(browser).until(shown.url_matches(r"/console/alerts/\d+$"))
    alert_url = browser.current_url
    alert_id = alert_url.rsplit("/", 1)[1]
    shot("draft")
    accessible()
    browser.find_element(By.XPATH, "//button[contains(., 'Wyślij do zatwierdzenia')]").click()
    wait(browser).until(
        shown.text_to_be_present_in_element((By.ID, "status"), "czeka na zatwierdzenie")
    )
    assert not browser.find_elements(By.XPATH, "//button[contains(., 'Zatwierdź')]")
    sign_out(browser)

    # A second person approves it from the queue.
    sign_in(browser, stack, approver)
    browser.get(f"{stack.base_url}/console/review")
    shot("review-queue")
    accessible()
    browser.find_element(By.CSS_SELECTOR, f"a[href='/console/alerts/{alert_id}']").click()
    shot("review-alert")
    accessible()
    browser.find_element(By.XPATH, "//button[contains(., 'Zatwierdź i wyślij')]").click()
    # The page follows the progress by itself until the alert is done.
    wait(browser, 90).until(shown.text_to_be_present_in_element((By.ID, "status"), "wysłany"))
    assert "12" in browser.find_element(By.ID, "progress").text
    shot("done")
    accessible()
    sign_out(browser)

    # The auditor filters the log and downloads it.
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    sign_in(browser, stack, auditor)
    browser.get(f"{stack.base_url}/console/log")
    browser.find_element(By.ID, "alert").send_keys(alert_id)
    Select(browser.find_element(By.ID, "channel")).select_by_value("sms")
    browser.find_element(By.CSS_SELECTOR, "form.filters button.primary").click()
    wait(browser).until(shown.url_contains(f"alert={alert_id}"))
    rows = browser.find_elements(By.CSS_SELECTOR, "table.log tbody tr")
    assert len(rows) == 12
    assert "601000001" not in browser.page_source  # masked
    shot("log")
    accessible()
    browser.find_element(By.PARTIAL_LINK_TEXT, "CSV").click()
    saved = eventually(lambda: list(tmp_path.glob("deliveries-*.csv")), "the CSV download")
    with saved[0].open(newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert len(exported) == 12 and {r["channel"] for r in exported} == {"sms"}

    browser.get(f"{stack.base_url}/console/alerts/{alert_id}")
    history = browser.find_element(By.XPATH, "//h2[contains(., 'Historia')]/..").text
    assert "Anna" in history and "Piotr" in history
    shot("alert-history")
    accessible()
    browser.get(f"{stack.base_url}/console/audit?verify=1")
    assert browser.find_element(By.ID, "verdict").text.startswith("Nienaruszony")
    shot("audit")
    accessible()

    # The sandbox shows the SMS as a phone would.
    browser.get(f"{stack.base_url}/console/sandbox")
    bubbles = browser.find_elements(By.CSS_SELECTOR, ".sandbox .sms .bubble")
    assert any("burze z gradem" in b.text for b in bubbles)
    opened = browser.find_element(By.CSS_SELECTOR, ".sandbox .mail details[open] .mail-body")
    assert "Zostań w domu." in opened.text  # the body as a mail client shows it
    shot("sandbox")
    accessible()


def test_an_sms_over_the_parts_limit_is_marked_in_the_live_preview_and_refused(
    stack: RunningStack, browser: webdriver.Chrome, shot: Shot, accessible: Check
) -> None:
    sign_in(browser, stack, stack.staff_token("bogna", "operator"))
    browser.get(f"{stack.base_url}/console/alerts/new")
    Select(browser.find_element(By.ID, "topic")).select_by_value("weather-warning")
    browser.find_element(By.CSS_SELECTOR, "label.d-wola").click()
    browser.find_element(By.ID, "title_pl").send_keys("Burza")
    browser.find_element(By.ID, "body_pl").send_keys(LONG_PL)
    wait(browser).until(shown.presence_of_element_located((By.ID, "sms-pl-problem")))
    marked = browser.find_element(By.CSS_SELECTOR, "figure.over-limit[data-over-limit=pl]")
    assert "SMS (pl) wymaga 4 części, limit to 3" in marked.text
    assert "SMS bez polskich znaków" in marked.text  # the remedy, in words
    shot("compose-sms-over-limit")
    accessible()
    browser.find_element(By.CSS_SELECTOR, "button[value=save]").click()
    wait(browser).until(shown.presence_of_element_located((By.ID, "body_pl-error")))
    assert "wymaga 4 części" in browser.find_element(By.ID, "body_pl-error").text
    assert browser.current_url.endswith("/console/alerts/new")
    accessible()
    sign_out(browser)
