"""The command line, end to end on a real database: what an administrator types."""

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, text

from broadcaster.cli.main import main
from tests.conftest import TEST_SECRET, as_database_owner


class Cli:
    def __init__(self, database_url: str, data_dir: Path) -> None:
        # The key the test databases' audit trail is sealed with, as a deployment's CLI
        # shares its secret key with the rest.
        self.env = {
            "DATABASE_URL": database_url,
            "WSP_DATA_DIR": str(data_dir),
            "WSP_SECRET_KEY": TEST_SECRET,
        }
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0, env: dict[str, str] | None = None) -> Result:
        result = self.runner.invoke(
            main, list(args), env={**self.env, **(env or {})}, catch_exceptions=False
        )
        assert result.exit_code == code, result.output
        return result


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    return Cli(database_url, tmp_path)


ALERT = [
    "alert",
    "create",
    "--topic",
    "weather-warning",
    "--district",
    "mokotow",
    "--district",
    "wola",
    "--severity",
    "Severe",
    "--urgency",
    "Expected",
    "--channel",
    "sms",
    "--channel",
    "email",
    "--title-pl",
    "Ostrzeżenie: burze",
    "--body-pl",
    "Silne burze z gradem od 18:00.",
]


def test_the_whole_lifecycle_from_the_command_line(cli: Cli) -> None:
    cli("migrate")
    assert "18 districts (0 new)" in cli("seed").output
    cli("operator", "add", "anna", "--role", "operator", "--name", "Anna Nowak")
    cli("operator", "add", "celina", "--role", "approver", "--name", "Celina Wiśniewska")
    assert "added 300 subscribers" in cli("seed-demo", "--subscribers", "300").output

    created = json.loads(cli(*ALERT, "--as", "anna", "--json").output)
    alert_id = str(created["id"])
    assert created["status"] == "draft"
    assert created["districts"] == ["mokotow", "wola"]
    assert "awaiting_approval" in cli("alert", "submit", alert_id, "--as", "anna").output

    refused = cli("alert", "approve", alert_id, "--as", "anna", code=3)
    assert "needs the approver or admin role" in refused.output
    cli("operator", "add", "edward", "--role", "admin", "--name", "Edward Admin")
    own = json.loads(cli(*ALERT, "--as", "edward", "--json").output)
    cli("alert", "submit", str(own["id"]), "--as", "edward")
    assert (
        "second person" in cli("alert", "approve", str(own["id"]), "--as", "edward", code=3).output
    )
    assert "approved" in cli("alert", "approve", alert_id, "--as", "celina").output

    shown = json.loads(cli("alert", "show", alert_id, "--json").output)
    assert shown["status"] == "approved"
    assert shown["approver_id"] is not None
    assert set(shown["audience"]) <= {"sms", "email"}
    assert sum(shown["audience"].values()) > 0
    human = cli("alert", "show", alert_id).output
    assert "[pl] Ostrzeżenie: burze" in human
    assert "audience: " in human

    preview = cli("alert", "preview", alert_id).output
    assert "[pl] SMS " in preview
    assert "SMS in all: " in preview
    as_json = json.loads(cli("alert", "preview", alert_id, "--json").output)
    assert as_json["sms"]["recipients"] == shown["audience"].get("sms", 0)
    assert (
        "cancelled"
        in cli("alert", "cancel", alert_id, "--as", "anna", "--reason", "storm passed").output
    )
    again = cli("alert", "approve", alert_id, "--as", "celina", code=4)
    assert "is cancelled" in again.output
    assert cli("audit", "verify").output.startswith("intact: ")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--district", "gotham"], "districts: unknown district 'gotham'"),
        (["--send-at", "tomorrow"], "Invalid value for '--send-at'"),
        (["--send-at", "2020-01-01T10:00"], "send_at: is in the past"),
        # The hour the clocks skip names no moment: refused as the console refuses it.
        (
            ["--send-at", "2027-03-28T02:30"],
            "Invalid value for '--send-at': does not exist in Warsaw",
        ),
        # A year at the calendar's edge overflowed to a traceback, not a usage error.
        (
            ["--send-at", "0001-01-01T00:00"],
            "Invalid value for '--send-at': must be a date and time",
        ),
        (
            ["--send-at", "2099-01-01T10:00", "--expires-at", "2099-01-01T09:00"],
            "expires_at: must be later",
        ),
        # As the console says it: the alert service names the missing half.
        (["--title-en", "Storm"], "contents.en.body: is required"),
        (["--severity", "Huge"], "severity: must be one of"),
    ],
)
def test_bad_input_exits_2_naming_the_field(cli: Cli, extra: list[str], message: str) -> None:
    cli("operator", "add", "anna", "--role", "operator", "--name", "Anna Nowak")
    args = list(ALERT)
    if "--severity" in extra:
        args[args.index("--severity") + 1] = extra[1]
        extra = []
    result = cli(*args, *extra, "--as", "anna", code=2)
    assert message in result.output
    # Nothing half-written: the alert does not exist.
    assert "alert 1 not found" in cli("alert", "show", "1", code=2).output


def test_send_at_is_read_on_warsaws_clock(cli: Cli) -> None:
    cli("operator", "add", "anna", "--role", "operator", "--name", "Anna Nowak")
    winter = json.loads(
        cli(*ALERT, "--send-at", "2027-01-10T18:00", "--as", "anna", "--json").output
    )
    assert datetime.fromisoformat(winter["send_at"]) == datetime(2027, 1, 10, 17, 0, tzinfo=UTC)
    # The hour the clocks repeat in autumn reads as its first pass, still on summer time.
    autumn = json.loads(
        cli(*ALERT, "--send-at", "2027-10-31T02:30", "--as", "anna", "--json").output
    )
    assert datetime.fromisoformat(autumn["send_at"]) == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)


def test_unknown_people_and_bad_accounts_exit_2(cli: Cli) -> None:
    assert "operator nobody not found" in cli(*ALERT, "--as", "nobody", code=2).output
    assert (
        "role: must be one of"
        in cli("operator", "add", "x1", "--role", "boss", "--name", "X", code=2).output
    )
    assert (
        "username:"
        in cli("operator", "add", "X!", "--role", "operator", "--name", "X", code=2).output
    )


def test_a_malformed_setting_stops_the_program_naming_it(cli: Cli) -> None:
    result = cli("migrate", code=2, env={"WSP_SMS_MAX_PARTS": "lots"})
    assert "WSP_SMS_MAX_PARTS" in result.output
    result = cli("migrate", code=2, env={"WSP_SMTP_PROT": "25"})
    assert "WSP_SMTP_PROT: unknown setting" in result.output


def test_audit_verify_exits_1_on_a_broken_chain(cli: Cli, engine: Engine) -> None:
    cli("operator", "add", "anna", "--role", "operator", "--name", "Anna Nowak")
    cli("operator", "add", "bartek", "--role", "operator", "--name", "Bartek Zieliński")
    with as_database_owner(engine) as connection:
        connection.execute(
            text("UPDATE audit_events SET action = 'operator.deleted' WHERE seq = 1")
        )
    result = cli("audit", "verify", code=1)
    assert "broken at record seq 1" in result.output


def test_a_checkpoint_kept_outside_shows_a_tail_cut_with_the_tip_put_back(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    """The attack the seal alone cannot see: the head row copied, records added, then cut
    and the copy put back. The checkpoint an auditor kept (from the command, or a log that
    quotes it) gives it away; a file with no checkpoint is refused naming the option."""
    cli("operator", "add", "anna", "--role", "operator", "--name", "Anna Nowak")
    with engine.connect() as connection:
        copied = connection.execute(text("SELECT seq, hash, seal FROM audit_head")).one()
    cli("operator", "add", "bartek", "--role", "operator", "--name", "Bartek Zieliński")
    kept = tmp_path / "kept.log"
    line = cli("audit", "checkpoint").output.strip()
    kept.write_text(f"2026-12-03 09:00 audit checkpoint {line}\n", encoding="utf-8")
    assert "checked against 1 checkpoint(s), the newest at seq 2" in (
        cli("audit", "verify", "--checkpoint", str(kept)).output
    )
    with as_database_owner(engine) as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq > 1"))
        connection.execute(
            text("UPDATE audit_head SET seq = :seq, hash = :hash, seal = :seal"),
            dict(copied._mapping),
        )
    assert cli("audit", "verify").output.startswith("intact: 1 records")
    result = cli("audit", "verify", "--checkpoint", str(kept), code=1)
    assert "saw seq 2, but the chain ends at seq 1" in result.output
    empty = tmp_path / "empty.txt"
    empty.write_text("no checkpoint here\n", encoding="utf-8")
    refused = cli("audit", "verify", "--checkpoint", str(empty), code=2)
    assert f"--checkpoint {empty}: holds no audit checkpoint" in refused.output
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    refused = cli("audit", "verify", "--checkpoint", str(binary), code=2)
    assert "is not UTF-8 text" in refused.output


def test_audit_checkpoint_refuses_a_tip_moved_without_the_key(cli: Cli, engine: Engine) -> None:
    cli("operator", "add", "anna", "--role", "operator", "--name", "Anna Nowak")
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_head SET seq = 0, hash = :h"), {"h": "0" * 64})
    result = cli("audit", "checkpoint", code=1)
    assert "does not verify, so no checkpoint" in result.output
    assert "seal does not match" in cli("audit", "verify", code=1).output


def test_console_script_on_embedded_defaults(tmp_path: Path) -> None:
    """A fresh checkout: no DATABASE_URL, the SQLite file appears under the data folder."""
    env = {"PATH": "/usr/bin:/bin", "WSP_DATA_DIR": str(tmp_path / "var")}
    for command in (["migrate"], ["seed"], ["audit", "verify"]):
        done = subprocess.run(
            [sys.executable, "-m", "broadcaster", *command],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "var" / "broadcaster.db").exists()
    assert "intact: 0 records" in done.stdout


def test_synthetic_residents_are_refused_in_production(cli: Cli, tmp_path: Path) -> None:
    credentials = tmp_path / "sa.json"
    credentials.write_text("{}")
    production = {
        "WSP_ENV": "production",
        "WSP_SECRET_KEY": "a-production-secret-0123",
        "WSP_SMSAPI_TOKEN": "token",
        "WSP_SMSAPI_CALLBACK_SECRET": "callback-secret-0123",
        "WSP_FCM_CREDENTIALS_FILE": str(credentials),
    }
    result = cli("seed-demo", "--subscribers", "10", code=2, env=production)
    assert "WSP_ENV: synthetic residents are never added in production" in result.output


def test_an_admin_seals_a_moved_tip_again_only_against_a_checkpoint_and_it_is_recorded(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    cli("operator", "add", "root", "--role", "admin", "--name", "Rita Root")
    cli("operator", "add", "anna", "--role", "operator", "--name", "Anna Nowak")
    kept = tmp_path / "kept.txt"
    kept.write_text(cli("audit", "checkpoint").output, encoding="utf-8")
    with engine.begin() as connection:  # the tip's seal broken, nothing cut
        connection.execute(text("UPDATE audit_head SET seal = :s"), {"s": "0" * 64})
    assert "seal does not match" in cli("audit", "verify", code=1).output
    assert "give at least one checkpoint" in cli("audit", "reseal", "--as", "root", code=2).output
    refused = cli("audit", "reseal", "--as", "anna", "--checkpoint", str(kept), code=3)
    assert "admin" in refused.output
    resealed = cli("audit", "reseal", "--as", "root", "--checkpoint", str(kept)).output
    assert resealed.startswith("sealed again; the reseal is record seq 3")
    assert cli("audit", "verify", "--checkpoint", str(kept)).output.startswith("intact: 3 records")
    again = cli("audit", "reseal", "--as", "root", "--checkpoint", str(kept), code=4)
    assert "is sealed" in again.output


def test_a_cut_tail_is_never_sealed_again_when_a_checkpoint_saw_it(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    cli("operator", "add", "root", "--role", "admin", "--name", "Rita Root")
    cli("operator", "add", "anna", "--role", "operator", "--name", "Anna Nowak")
    kept = tmp_path / "kept.txt"
    kept.write_text(cli("audit", "checkpoint").output, encoding="utf-8")
    with as_database_owner(engine) as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq = 2"))
        connection.execute(
            text(
                "UPDATE audit_head SET seq = 1, "
                "hash = (SELECT hash FROM audit_events WHERE seq = 1)"
            )
        )
    refused = cli("audit", "reseal", "--as", "root", "--checkpoint", str(kept), code=4)
    assert "broken elsewhere" in refused.output and "saw seq 2" in refused.output
    assert "seal does not match" in cli("audit", "verify", code=1).output
