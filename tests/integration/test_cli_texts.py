"""The command line applies the same text rule and SMS parts limit as the API and the
console (exit 2 naming the field, nothing written), and says when an alert that ended
had failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.settings import Settings
from channels.interfaces import Outcome
from tests.conftest import LONG_PL, TEST_SECRET, add_sms_residents, send_alert
from tests.integration.test_cli import ALERT, Cli

TOO_LONG = "SMS (pl) needs 4 parts, the limit is 3: shorten the text or transliterate it to GSM-7"
ROOMY = {"WSP_SMS_MAX_PARTS": "4"}


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    made = Cli(database_url, tmp_path)
    # The key of the tests' own sessions: one audit chain for both.
    made.env["WSP_SECRET_KEY"] = TEST_SECRET
    made("migrate")
    made("operator", "add", "anna", "--role", "operator", "--name", "Anna Nowak")
    made("operator", "add", "celina", "--role", "approver", "--name", "Celina Wiśniewska")
    return made


def with_text(**texts: str) -> list[str]:
    args = list(ALERT)
    for option, value in texts.items():
        args[args.index(f"--{option.replace('_', '-')}") + 1] = value
    return args


def nothing_written(cli: Cli) -> None:
    assert "alert 1 not found" in cli("alert", "show", "1", code=2).output


@pytest.mark.parametrize("character", ["\x00", "\x1b"])
@pytest.mark.parametrize("part", ["title", "body"])
def test_a_control_character_exits_2_naming_the_field(cli: Cli, part: str, character: str) -> None:
    option = f"{part}_pl"
    args = with_text(**{option: f"Bu{character}rza"})
    refused = cli(*args, "--as", "anna", code=2)
    assert f"contents.pl.{part}: contains a control character U+{ord(character):04X}" in (
        refused.output
    )
    nothing_written(cli)


def test_a_line_break_in_a_title_is_folded_to_a_space(cli: Cli) -> None:
    args = with_text(title_pl="Burza\u2028nad\r\nWolą", body_pl="Od 18:00.\rUważaj.")
    created = json.loads(cli(*args, "--as", "anna", "--json").output)
    assert created["contents"]["pl"] == {"title": "Burza nad Wolą", "body": "Od 18:00.\nUważaj."}


def test_an_sms_over_the_limit_exits_2_at_create_submit_and_approve(cli: Cli) -> None:
    long = with_text(body_pl=LONG_PL)
    assert f"contents.pl.body: {TOO_LONG}" in cli(*long, "--as", "anna", code=2).output
    nothing_written(cli)
    cli(*long, "--transliterate-sms", "--as", "anna")  # alert 1: the remedy fits

    # Written while the limit was 4, submitted when it is 3.
    cli(*long, "--as", "anna", env=ROOMY)
    assert TOO_LONG in cli("alert", "submit", "2", "--as", "anna", code=2).output
    assert "draft" in cli("alert", "show", "2").output

    # Submitted while the limit was 4, approved when it is 3: approve checks again.
    cli("alert", "submit", "2", "--as", "anna", env=ROOMY)
    assert TOO_LONG in cli("alert", "approve", "2", "--as", "celina", code=2).output
    assert "awaiting_approval" in cli("alert", "show", "2").output

    preview = cli("alert", "preview", "2").output
    assert f"! {TOO_LONG}." in preview
    assert "approved" in cli("alert", "approve", "2", "--as", "celina", env=ROOMY).output


def test_alert_show_says_when_an_alert_ended_with_failures(
    cli: Cli, db: sessionmaker[Session], settings: Settings
) -> None:
    with db.begin() as session:
        add_sms_residents(session, settings, "wola")
    for alert_id, outcome in (("1", Outcome.SENT), ("2", Outcome.PERMANENT)):
        cli(*ALERT, "--as", "anna")
        cli("alert", "submit", alert_id, "--as", "anna")
        cli("alert", "approve", alert_id, "--as", "celina")
        send_alert(db, settings, int(alert_id), outcome=outcome)
    assert "alert 1: done  [Actual]" in cli("alert", "show", "1").output
    shown = cli("alert", "show", "2").output
    assert "alert 2: done, sent with failures (2 failed)  [Actual]" in shown
    assert json.loads(cli("alert", "show", "2", "--json").output)["outcome"] == (
        "done_with_failures"
    )


@pytest.mark.parametrize("character", ["\x00", "\x1b"])
def test_a_reason_or_a_name_with_a_control_character_exits_2_naming_it(
    cli: Cli, character: str
) -> None:
    cli(*ALERT, "--as", "anna")
    refused = cli("alert", "cancel", "1", "--as", "anna", "--reason", f"bu{character}rza", code=2)
    assert f"reason: contains a control character U+{ord(character):04X}" in refused.output
    assert cli("alert", "show", "1").output.startswith("alert 1: draft")
    named = cli(
        "operator", "add", "olek", "--role", "operator", "--name", f"O{character}lek", code=2
    )
    assert f"display_name: contains a control character U+{ord(character):04X}" in named.output
    refused = cli("alert", "cancel", "1", "--as", "anna", "--reason", "x" * 1001, code=2)
    assert "reason: is longer than 1000 characters" in refused.output
