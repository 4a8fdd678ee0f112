"""SMS through smsapi-client to the SMSAPI sandbox: what goes on the wire, what comes back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from aiohttp import web

from channels.interfaces import ChannelConfigError, Message, Outcome
from channels.sandbox.server import SMSAPI_TOKEN, free_port
from channels.sms import SmsApiChannel, SmsApiConfig
from tests.channels.conftest import Sandbox


def channel(sandbox: Sandbox, **changes: object) -> SmsApiChannel:
    fields: dict[str, object] = {
        "token": SMSAPI_TOKEN,
        "base_url": sandbox.endpoints.smsapi_url,
        "sender": "Warszawa",
        "max_parts": 3,
    }
    fields.update(changes)
    return SmsApiChannel(SmsApiConfig(**fields))  # type: ignore[arg-type]


def sms(delivery_id: int, number: str, text: str = "Ostrzeżenie: burza o 18:00") -> Message:
    return Message(delivery_id=delivery_id, address=number, text=text)


def send(sender: SmsApiChannel, messages: list[Message]) -> dict[int, object]:
    results = asyncio.run(sender.send_batch(messages))
    assert sorted(r.delivery_id for r in results) == sorted(m.delivery_id for m in messages)
    return {r.delivery_id: r for r in results}


def test_one_request_per_text_with_idx_per_delivery(sandbox: Sandbox) -> None:
    batch = [
        sms(1, "+48601000001"),
        sms(2, "+48601000002"),
        sms(3, "+48601000003", "Weather warning: storm at 18:00"),
    ]
    results = send(channel(sandbox), batch)
    assert {r.outcome for r in results.values()} == {Outcome.SENT}  # type: ignore[attr-defined]
    assert len({r.provider_id for r in results.values()}) == 3  # type: ignore[attr-defined]
    assert sandbox.counts("smsapi")["requests"] == 2  # two texts, two requests
    wire = {m["address"]: m for m in sandbox.messages("smsapi")}
    assert set(wire) == {"48601000001", "48601000002", "48601000003"}
    polish, english = wire["48601000001"], wire["48601000003"]
    assert (polish["idx"], polish["encoding"], polish["sender"]) == ("1", "UCS-2", "Warszawa")
    assert polish["text"] == "Ostrzeżenie: burza o 18:00"
    assert english["encoding"] == "GSM-7"
    # The library's quirks: no Python booleans or None on the wire, our values as given.
    assert polish["fields"] == {
        "check_idx": "1",
        "max_parts": "3",
        "encoding": "utf-8",
        "format": "json",
    }


def test_a_retried_batch_arrives_once(sandbox: Sandbox) -> None:
    sender = channel(sandbox)
    first = [sms(10, "+48601000010"), sms(11, "+48601000011"), sms(12, "+48601000012")]
    send(sender, first)
    # A worker died after the provider accepted the batch; the batch runs again, with
    # deliveries added to it that never left.
    again = [*first, sms(13, "+48601000013"), sms(14, "+48601000014")]
    results = send(sender, again)
    assert all(r.outcome is Outcome.SENT for r in results.values())  # type: ignore[attr-defined]
    assert [results[i].error_code for i in (10, 11, 12)] == ["53", "53", "53"]  # type: ignore[attr-defined]
    assert results[13].provider_id and results[14].provider_id  # type: ignore[attr-defined]
    counts = sandbox.counts("smsapi")
    assert (counts["accepted"], counts["duplicates"], counts["distinct"]) == (5, 0, 5)


def test_an_idx_repeated_within_one_request_is_refused_by_the_provider(sandbox: Sandbox) -> None:
    import requests

    answer = requests.post(
        f"{sandbox.endpoints.smsapi_url}sms.do",
        timeout=10,
        headers={"Authorization": f"Bearer {SMSAPI_TOKEN}"},
        data={
            "to": "48601000020,48601000021",
            "message": "x",
            "idx": "7|7",
            "check_idx": "1",
            "format": "json",
        },
    ).json()
    assert answer["error"] == 53
    assert [n["number"] for n in answer["invalid_numbers"]] == ["48601000021"]
    assert sandbox.counts("smsapi")["accepted"] == 0


def test_invalid_numbers_fail_alone(sandbox: Sandbox) -> None:
    sandbox.faults("smsapi", refused=["48601000031"])
    results = send(channel(sandbox), [sms(30, "+48601000030"), sms(31, "+48601000031")])
    assert results[30].outcome is Outcome.SENT  # type: ignore[attr-defined]
    refused = results[31]
    assert (refused.outcome, refused.error_code, refused.disable_address) == (  # type: ignore[attr-defined]
        Outcome.PERMANENT,
        "13",
        True,
    )


def test_a_request_of_only_invalid_numbers(sandbox: Sandbox) -> None:
    sandbox.faults("smsapi", refused=["48601000040", "48601000041"])
    results = send(channel(sandbox), [sms(40, "+48601000040"), sms(41, "+48601000041")])
    assert {(r.outcome, r.error_code) for r in results.values()} == {(Outcome.PERMANENT, "13")}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("faults", "code"),
    [({"error_rate": 1}, "http-500"), ({"throttle_rate": 1, "retry_after": 2}, "http-429")],
)
def test_provider_trouble_is_temporary(
    sandbox: Sandbox, faults: dict[str, float], code: str
) -> None:
    sandbox.faults("smsapi", **faults)
    results = send(
        channel(sandbox), [sms(50, "+48601000050"), sms(51, "+48601000051", "Other text")]
    )
    assert (results[50].outcome, results[50].error_code) == (Outcome.TEMPORARY, code)  # type: ignore[attr-defined]
    if code == "http-429":
        # Retry-After read off the answer, and the rest of the batch held back unsent.
        assert results[50].retry_after == 2.0  # type: ignore[attr-defined]
        assert results[51].retry_after == 2.0  # type: ignore[attr-defined]
        assert sandbox.counts("smsapi")["requests"] == 1


def test_too_many_parts_is_permanent(sandbox: Sandbox) -> None:
    results = send(channel(sandbox, max_parts=1), [sms(60, "+48601000060", "ą" * 71)])
    assert (results[60].outcome, results[60].error_code) == (Outcome.PERMANENT, "12")  # type: ignore[attr-defined]


def test_a_wrong_token_and_a_dead_server_are_temporary(sandbox: Sandbox) -> None:
    results = send(channel(sandbox, token="wrong"), [sms(70, "+48601000070")])
    assert (results[70].outcome, results[70].error_code) == (Outcome.TEMPORARY, "http-401")  # type: ignore[attr-defined]
    nobody = f"http://127.0.0.1:{free_port()}/"
    results = send(channel(sandbox, base_url=nobody, timeout=2), [sms(71, "+48601000071")])
    assert (results[71].outcome, results[71].error_code) == (Outcome.TEMPORARY, "network")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"token": ""}, "smsapi_token"),
        ({"base_url": "http://127.0.0.1:1/api"}, "smsapi_url"),
        ({"max_parts": 11}, "sms_max_parts"),
    ],
)
def test_bad_configuration_names_the_setting(
    sandbox: Sandbox, changes: dict[str, object], setting: str
) -> None:
    with pytest.raises(ChannelConfigError) as caught:
        channel(sandbox, **changes)
    assert caught.value.setting == setting


@pytest.fixture
def receipts() -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    """A stand-in for our receipt endpoint: records each callback and answers OK."""
    calls: list[dict[str, list[str]]] = []

    async def handle(request: web.Request) -> web.Response:
        calls.append(parse_qs(request.query_string))
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get("/receipts/smsapi", handle)
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/receipts/smsapi", calls
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.run_until_complete(runner.cleanup())
    loop.close()


def test_delivery_reports_come_back_comma_joined(
    sandbox: Sandbox, receipts: tuple[str, list[dict[str, list[str]]]]
) -> None:
    import time

    url, calls = receipts
    sandbox.faults("smsapi", undelivered=["48601000081"])
    results = send(
        channel(sandbox, notify_url=url),
        [sms(80, "+48601000080"), sms(81, "+48601000081"), sms(82, "+48601000082")],
    )
    deadline = time.monotonic() + 10
    while sum(len(c["MsgId"][0].split(",")) for c in calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    reports = {}
    for call in calls:
        for message_id, status, idx in zip(
            call["MsgId"][0].split(","),
            call["status"][0].split(","),
            call["idx"][0].split(","),
            strict=True,
        ):
            reports[idx] = (message_id, status)
    assert reports == {
        "80": (results[80].provider_id, "404"),  # type: ignore[attr-defined]
        "81": (results[81].provider_id, "405"),  # type: ignore[attr-defined]
        "82": (results[82].provider_id, "404"),  # type: ignore[attr-defined]
    }
    assert all("donedate" in call and call["username"] == ["sandbox"] for call in calls)
    assert sandbox.counts("smsapi")["reports_sent"] == 3
