"""Senders built from settings: the sandbox's environment works, bad settings stop start-up."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from broadcaster.dispatch.senders import build_sender, build_senders
from broadcaster.settings import SettingsError, load_settings
from channels.interfaces import Channel, Message, Outcome
from tests.channels.conftest import Sandbox


def test_the_sandbox_environment_drives_every_channel(sandbox: Sandbox, tmp_path: Path) -> None:
    settings = load_settings({**sandbox.endpoints.environment(), "WSP_DATA_DIR": str(tmp_path)})
    messages = {
        Channel.SMS: Message(delivery_id=1, address="+48601000001", text="Burza o 18:00"),
        Channel.PUSH: Message(
            delivery_id=2, address="sandbox-device:" + "a" * 40, title="Burza", text="o 18:00"
        ),
        Channel.EMAIL: Message(
            delivery_id=3, address="jan@example.com", title="Burza", text="o 18:00"
        ),
    }

    async def run() -> dict[Channel, Outcome]:
        senders = build_senders(settings)
        try:
            return {
                channel: (await senders[channel].send_batch([message]))[0].outcome
                for channel, message in messages.items()
            }
        finally:
            for sender in senders.values():
                await sender.aclose()

    assert all(sandbox.counts(p)["first_request_at"] is None for p in ("smsapi", "fcm", "smtp"))
    before = time.time()
    assert asyncio.run(run()) == {channel: Outcome.SENT for channel in Channel}
    assert [sandbox.counts(p)["accepted"] for p in ("smsapi", "fcm", "smtp")] == [1, 1, 1]
    # What a benchmark times an alert's first provider call by.
    firsts = [sandbox.counts(p)["first_request_at"] for p in ("smsapi", "fcm", "smtp")]
    assert all(before <= first <= time.time() for first in firsts)


def test_a_missing_token_names_the_variable(sandbox: Sandbox) -> None:
    settings = load_settings({**sandbox.endpoints.environment(), "WSP_SMSAPI_TOKEN": ""})
    with pytest.raises(SettingsError) as caught:
        build_sender(Channel.SMS, settings)
    assert caught.value.variable == "WSP_SMSAPI_TOKEN"


def test_an_unusable_service_account_names_the_variable(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {
                **sandbox.endpoints.environment(),
                "WSP_FCM_CREDENTIALS_FILE": str(tmp_path / "no.json"),
            }
        )
    assert caught.value.variable == "WSP_FCM_CREDENTIALS_FILE"
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    settings = load_settings(
        {**sandbox.endpoints.environment(), "WSP_FCM_CREDENTIALS_FILE": str(garbage)}
    )
    with pytest.raises(SettingsError) as caught:
        build_sender(Channel.PUSH, settings)
    assert caught.value.variable == "WSP_FCM_CREDENTIALS_FILE"


def test_a_bad_smtp_host_names_the_variable(sandbox: Sandbox) -> None:
    settings = load_settings({**sandbox.endpoints.environment(), "WSP_SMTP_HOST": "smtp.invalid"})
    with pytest.raises(SettingsError) as caught:
        build_sender(Channel.EMAIL, settings)
    assert caught.value.variable == "WSP_SMTP_HOST"
    assert "cannot be resolved" in str(caught.value)


def test_broadcaster_sandbox_runs_until_interrupted(tmp_path: Path) -> None:
    import json
    import signal
    import subprocess
    import time
    import urllib.request

    from channels.sandbox.server import command_line

    env_file = tmp_path / "sandbox.env"
    process = subprocess.Popen(
        command_line(env_file),
        env={"PATH": "/usr/bin:/bin", "WSP_DATA_DIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not env_file.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert env_file.exists(), process.stderr.read() if process.stderr else ""
        exported = dict(
            line.removeprefix("export ").split("=", 1) for line in env_file.read_text().splitlines()
        )
        settings = load_settings({**exported, "WSP_DATA_DIR": str(tmp_path)})
        control = f"{settings.smsapi_url}_sandbox/smsapi/counts"
        with urllib.request.urlopen(control, timeout=10) as answer:
            assert json.loads(answer.read())["accepted"] == 0
        assert Path(exported["WSP_FCM_CREDENTIALS_FILE"]).is_absolute()
    finally:
        process.send_signal(signal.SIGINT)
        output, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    assert "sandbox ready" in errors
    assert "export WSP_SMSAPI_URL=" in output
