"""Browser tests: Chromium, driven by Selenium, against the whole system running as in
production on its embedded defaults (`broadcaster.dev.stack`): a fresh SQLite database and
broker, the sandbox providers, the HTTP app under uvicorn and one Celery worker.

Mark every test here `@pytest.mark.browser` (`-m "not browser"` leaves them out). Use
`stack` for the system, `browser` for Chromium, and `shot("name")` for a screenshot in
tests/artifacts/screenshots/. Chromium and chromedriver are Debian's packages, which
`make test` installs when they are missing.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.dev.stack import Stack, running_stack
from broadcaster.reference.services import seed_reference_data
from broadcaster.settings import Settings
from broadcaster.staff import operators
from broadcaster.staff.tokens import issue_token
from tests.channels.conftest import Sandbox

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.1 A and AA: labels, names, contrast, keyboard-reachable controls, landmarks...
AXE_RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 900)
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
CHROMIUM_FLAGS = (
    "--headless=new",
    # Root in a container: Chromium's sandbox needs user namespaces it does not get.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    # This machine's network is closed: Chromium's own calls home (component updates,
    # sync, QUIC probes) are refused, and waiting on them slows or breaks page loads.
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--lang=pl",
)

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 30) -> T:
    """What `probe` returns once it is something (not None, empty or false); fails
    naming `what` when it is still nothing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def cut_text(browser: webdriver.Chrome) -> list[str]:
    """Labels, buttons and links whose text is wider than their box (cut or spilling)."""
    return list(
        browser.execute_script(
            "return [...document.querySelectorAll('label, button, a')]"
            ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent.trim())"
        )
    )


@dataclass(frozen=True)
class RunningStack:
    """The running system, seen from a test."""

    system: Stack
    sandbox: Sandbox

    @property
    def base_url(self) -> str:
        return self.system.base_url

    @property
    def settings(self) -> Settings:
        return self.system.settings

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.system.sessions

    def staff_token(self, username: str, role: str) -> str:
        """A new staff account with `role` and an API token for it (the console's sign-in)."""
        with self.sessions.begin() as session:
            person = operators.create_operator(
                session=session,
                username=username,
                role=role,
                display_name=username.title(),
                created_by="system:test",
            )
            issued = issue_token(session=session, operator=person, name="e2e", lifetime_days=1)
        return issued.token

    def mails_to(self, address: str) -> list[dict[str, Any]]:
        """What the SMTP sandbox accepted for `address`, oldest first."""
        return [m for m in self.sandbox.messages("smtp") if m["address"] == address.lower()]

    def wait_for_mails(
        self, address: str, count: int = 1, timeout: float = 30
    ) -> list[EmailMessage]:
        """The first `count` mails to `address`, parsed, once the worker has sent them."""

        def arrived() -> list[str] | None:
            raw = [mail["raw"] for mail in self.mails_to(address)]
            return raw[:count] if len(raw) >= count else None

        try:
            raw = eventually(arrived, f"{count} mail(s) to {address}", timeout)
        except AssertionError as error:
            raise AssertionError(f"{error}; worker log:\n{self.system.worker_output()}") from None
        return [
            message_from_string(text, _class=EmailMessage, policy=policy.default) for text in raw
        ]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RunningStack]:
    directory = tmp_path / "stack"
    variables = {
        "DATABASE_URL": f"sqlite:///{directory / 'broadcaster.db'}",
        "BROKER_URL": f"sqla+sqlite:///{directory / 'broker.db'}",
        "WSP_SECRET_KEY": secrets.token_urlsafe(32),
        "WSP_ENV": "test",
    }

    def seed(session: Session) -> None:
        seed_reference_data(session=session)

    with running_stack(directory=directory, variables=variables, prepare=seed) as system:
        yield RunningStack(system, Sandbox(system.sandbox, system.endpoints))


def _chromium(profile: Path, *, scripts: bool = True) -> webdriver.Chrome:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} missing: `make test` installs them "
            "(apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    if not scripts:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_window_size(*WINDOW)
    return driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    driver = _chromium(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def scriptless_browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Chromium with JavaScript switched off: every core action must still work."""
    driver = _chromium(tmp_path / "chromium-profile-scriptless", scripts=False)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shot(browser: webdriver.Chrome, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """`shot("name")` saves the whole page as tests/artifacts/screenshots/<test>-<name>.png."""
    # Parametrised tests get their parameters in the name, so no two overwrite each other.
    test = re.sub(r"[^\w.-]+", "_", request.node.name).strip("_")

    def take(name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{test}-{name}.png"
        size = browser.get_window_size()
        width, height = size["width"], size["height"]
        # A screenshot covers the viewport only: stretch the window to the page (plus the
        # window's own frame, which headless Chromium keeps too), then put it back.
        page, frame = browser.execute_script(
            "return [Math.max(document.body.scrollHeight,"
            " document.documentElement.scrollHeight), outerHeight - innerHeight]"
        )
        browser.set_window_size(width, max(height, int(page) + int(frame)))
        try:
            if not browser.save_screenshot(str(path)):
                raise AssertionError(f"Chromium did not save the screenshot {path}")
        finally:
            browser.set_window_size(width, height)
        return path

    return take


@pytest.fixture
def accessible(browser: webdriver.Chrome) -> Callable[[], None]:
    """`accessible()` checks the page as it is now with axe-core (WCAG 2.1 A and AA) and
    fails listing every violation and the elements at fault."""
    if not AXE.exists():
        pytest.fail(f"{AXE} missing: `make test` installs it (npm install)")
    source = AXE.read_text()

    def check() -> None:
        browser.execute_script(source)
        violations = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}})"
            ".then(r => done(r.violations.map(v => [v.id, v.help,"
            " v.nodes.map(n => n.target.join(' ')).slice(0, 5)])))"
            ".catch(e => done([['axe-error', String(e), []]]));",
            AXE_RULES,
        )
        assert not violations, f"{browser.current_url}: " + "; ".join(
            f"{rule} ({help}) at {targets}" for rule, help, targets in violations
        )

    return check
