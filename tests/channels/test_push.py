"""Push through firebase-admin to the FCM sandbox, on both transports."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from channels.interfaces import ChannelConfigError, DeliveryResult, Message, Outcome
from channels.push import FcmConfig, FirebasePushChannel
from channels.sandbox.server import FCM_PROJECT
from tests.channels.conftest import Sandbox

TRANSPORTS = ["aiohttp", "library"]


def token(n: int) -> str:
    return f"sandbox-device-{n:06d}:APA91b" + "x" * 60


def push(n: int, **changes: object) -> Message:
    fields: dict[str, object] = {
        "delivery_id": n,
        "address": token(n),
        "title": "Burza",
        "text": "Silne burze od 18:00",
        "data": {"alert_id": "7"},
    }
    fields.update(changes)
    return Message(**fields)  # type: ignore[arg-type]


def config(sandbox: Sandbox, transport: str, **changes: object) -> FcmConfig:
    fields: dict[str, object] = {
        "project_id": FCM_PROJECT,
        "credentials_file": sandbox.endpoints.fcm_credentials_file,
        "endpoint": sandbox.endpoints.fcm_url,
        "transport": transport,
        "ca_file": sandbox.endpoints.ca_file,
        "timeout": 5.0,
    }
    fields.update(changes)
    return FcmConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture
def trust_sandbox(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """firebase-admin's httpx transport trusts the CA bundle named by SSL_CERT_FILE."""
    monkeypatch.setenv("SSL_CERT_FILE", sandbox.endpoints.ca_file)


def send(cfg: FcmConfig, messages: list[Message]) -> dict[int, DeliveryResult]:
    async def run() -> list[DeliveryResult]:
        channel = FirebasePushChannel(cfg)
        try:
            return await channel.send_batch(messages)
        finally:
            await channel.aclose()

    results = asyncio.run(run())
    assert sorted(r.delivery_id for r in results) == sorted(m.delivery_id for m in messages)
    return {r.delivery_id: r for r in results}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_messages_arrive_as_fcm_v1_over_tls(
    sandbox: Sandbox, trust_sandbox: None, transport: str
) -> None:
    expires = datetime.now(UTC) + timedelta(hours=2)
    results = send(
        config(sandbox, transport), [push(1, urgent=True, expires_at=expires), push(2), push(3)]
    )
    assert {r.outcome for r in results.values()} == {Outcome.SENT}
    assert all(
        str(r.provider_id).startswith(f"projects/{FCM_PROJECT}/messages/") for r in results.values()
    )
    wire = {m["address"]: m for m in sandbox.messages("fcm")}
    urgent = wire[token(1)]
    assert (urgent["title"], urgent["body"], urgent["data"]) == (
        "Burza",
        "Silne burze od 18:00",
        {"alert_id": "7"},
    )
    assert urgent["android"]["priority"] == "high"
    assert 7000 < float(urgent["android"]["ttl"].rstrip("s")) <= 7200
    assert urgent["apns"]["headers"]["apns-priority"] == "10"
    assert wire[token(2)]["android"]["priority"] == "normal"
    versions = sandbox.counts("fcm")["http_versions"]
    # The library's own path speaks HTTP/2, as it does to Google; ours keeps HTTP/1.1 connections.
    assert versions == ({"2": 3} if transport == "library" else {"1.1": 3})


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_dead_and_malformed_tokens_fail_for_good_and_are_disabled(
    sandbox: Sandbox, trust_sandbox: None, transport: str
) -> None:
    sandbox.faults("fcm", refused=[token(11)])
    results = send(
        config(sandbox, transport), [push(10), push(11), push(12, address="not-a-token")]
    )
    assert results[10].outcome is Outcome.SENT
    assert (results[11].outcome, results[11].error_code, results[11].disable_address) == (
        Outcome.PERMANENT,
        "UNREGISTERED",
        True,
    )
    assert (results[12].outcome, results[12].error_code, results[12].disable_address) == (
        Outcome.PERMANENT,
        "INVALID_ARGUMENT",
        True,
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_quota_is_temporary_with_retry_after(
    sandbox: Sandbox, trust_sandbox: None, transport: str
) -> None:
    sandbox.faults("fcm", throttle_rate=1, retry_after=7)
    results = send(config(sandbox, transport), [push(20)])
    assert (results[20].outcome, results[20].error_code, results[20].retry_after) == (
        Outcome.TEMPORARY,
        "QUOTA_EXCEEDED",
        7.0,
    )


def test_unavailable_and_unreachable_are_temporary(sandbox: Sandbox) -> None:
    # (The library path retries 5xx itself for seconds before giving up: ours reports at once.)
    sandbox.faults("fcm", error_rate=1, retry_after=3)
    results = send(config(sandbox, "aiohttp"), [push(30)])
    assert (results[30].outcome, results[30].error_code) == (Outcome.TEMPORARY, "UNAVAILABLE")
    sandbox.faults("fcm", error_rate=0)
    from channels.sandbox.server import free_port

    dead = send(config(sandbox, "aiohttp", endpoint=f"https://127.0.0.1:{free_port()}"), [push(31)])
    assert (dead[31].outcome, dead[31].error_code) == (Outcome.TEMPORARY, "UNAVAILABLE")


def test_batches_above_the_multicast_limit_are_split(sandbox: Sandbox) -> None:
    results = send(config(sandbox, "aiohttp"), [push(n) for n in range(1000, 1501)])
    assert len(results) == 501
    assert sandbox.counts("fcm")["accepted"] == 501


def test_bad_credentials_name_the_setting(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(ChannelConfigError) as caught:
        FirebasePushChannel(
            config(sandbox, "aiohttp", credentials_file=str(tmp_path / "missing.json"))
        )
    assert caught.value.setting == "fcm_credentials_file"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"type": "service_account"}))
    with pytest.raises(ChannelConfigError) as caught:
        FirebasePushChannel(config(sandbox, "aiohttp", credentials_file=str(broken)))
    assert caught.value.setting == "fcm_credentials_file"
    with pytest.raises(ChannelConfigError) as caught:
        FirebasePushChannel(config(sandbox, "carrier-pigeon"))
    assert caught.value.setting == "fcm_transport"
