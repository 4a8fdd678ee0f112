"""E-mail through aiosmtplib to the SMTP sink: headers, parts, refusals, reconnects."""

from __future__ import annotations

import asyncio
import time
from email import message_from_string, policy

import pytest

from channels.email import SmtpConfig, SmtpEmailChannel
from channels.interfaces import ChannelConfigError, DeliveryResult, Message, Outcome
from templates.renderer import AlertText, render_email
from tests.channels.conftest import Sandbox


def config(sandbox: Sandbox, **changes: object) -> SmtpConfig:
    fields: dict[str, object] = {
        "host": "127.0.0.1",
        "port": sandbox.endpoints.smtp_port,
        "security": "starttls",
        "sender": "Powiadomienia Warszawa <powiadomienia@um.warszawa.pl>",
        "pool_size": 3,
        "ca_file": sandbox.endpoints.ca_file,
        "timeout": 5.0,
    }
    fields.update(changes)
    return SmtpConfig(**fields)  # type: ignore[arg-type]


def mail(n: int, address: str | None = None) -> Message:
    from datetime import UTC, datetime

    variant = render_email(
        AlertText(
            language="pl",
            title="Burza <b>",
            body="Silne burze & grad.",
            severity="Severe",
            topic="Ostrzeżenia",
            area="Wola",
            expires_at=datetime.now(UTC),
        )
    )
    url = f"https://powiadomienia.um.warszawa.pl/u/{n}?sig=abc"
    text, html = variant.for_recipient(url)
    return Message(
        delivery_id=n,
        address=address or f"resident{n}@example.com",
        text=text,
        title=variant.subject,
        html=html,
        unsubscribe_url=url,
    )


async def _send_rounds(
    cfg: SmtpConfig, rounds: list[list[Message]], pause: float = 0
) -> list[DeliveryResult]:
    channel = SmtpEmailChannel(cfg)
    results: list[DeliveryResult] = []
    try:
        for number, batch in enumerate(rounds):
            if number and pause:
                await asyncio.sleep(pause)
            results.extend(await channel.send_batch(batch))
    finally:
        await channel.aclose()
    return results


def send(cfg: SmtpConfig, *rounds: list[Message], pause: float = 0) -> dict[int, DeliveryResult]:
    return {r.delivery_id: r for r in asyncio.run(_send_rounds(cfg, list(rounds), pause))}


def test_one_message_per_resident_with_both_parts_and_rfc8058_headers(sandbox: Sandbox) -> None:
    results = send(config(sandbox), [mail(1), mail(2)])
    assert {r.outcome for r in results.values()} == {Outcome.SENT}
    assert results[1].provider_id == "<delivery-1@um.warszawa.pl>"
    wire = {m["address"]: m for m in sandbox.messages("smtp")}
    first = wire["resident1@example.com"]
    assert first["message_id"] == "<delivery-1@um.warszawa.pl>"
    assert first["list_unsubscribe"] == "<https://powiadomienia.um.warszawa.pl/u/1?sig=abc>"
    assert first["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"
    assert first["parts"] == ["text/plain", "text/html"]
    assert first["subject"] == "Ostrzeżenie: Burza <b>"
    parsed = message_from_string(first["raw"], policy=policy.default)
    html = parsed.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert "Burza &lt;b&gt;" in html and "<b>" not in html
    assert 'href="https://powiadomienia.um.warszawa.pl/u/1?sig=abc"' in html
    assert wire["resident2@example.com"]["list_unsubscribe"].endswith("/u/2?sig=abc>")


def test_each_recipient_gets_their_own_link_and_id_from_the_variant_template(
    sandbox: Sandbox,
) -> None:
    """Recipients of one variant share a template; what is theirs is put in per message,
    escaped in the HTML part; a non-ASCII address gets a message built for it."""
    tricky = mail(3)
    url = "https://powiadomienia.um.warszawa.pl/u/3?sig=abc&lang=pl"
    tricky = Message(
        delivery_id=3,
        address=tricky.address,
        text=tricky.text.replace(tricky.unsubscribe_url or "", url),
        title=tricky.title,
        html=tricky.html.replace(tricky.unsubscribe_url or "", url.replace("&", "&amp;")),
        unsubscribe_url=url,
    )
    results = send(config(sandbox), [mail(1), mail(2), tricky, mail(4, "żaneta@example.com")])
    assert {r.outcome for r in results.values()} == {Outcome.SENT}
    wire = {m["address"]: m for m in sandbox.messages("smtp")}
    for n in (1, 2, 4):
        address = "żaneta@example.com" if n == 4 else f"resident{n}@example.com"
        parsed = message_from_string(wire[address]["raw"], policy=policy.default)
        assert parsed["To"] == address
        assert parsed["Message-ID"] == f"<delivery-{n}@um.warszawa.pl>"
        text = parsed.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        html = parsed.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
        assert (
            f"/u/{n}?sig=abc" in text
            and f'href="https://powiadomienia.um.warszawa.pl/u/{n}?' in html
        )
        assert "stand-in" not in wire[address]["raw"]
    parsed = message_from_string(wire["resident3@example.com"]["raw"], policy=policy.default)
    assert parsed["List-Unsubscribe"] == f"<{url}>"
    html = parsed.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    text = parsed.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "sig=abc&amp;lang=pl" in html and url in text


def test_a_pool_of_connections_is_reused(sandbox: Sandbox) -> None:
    results = send(config(sandbox, pool_size=2), [mail(n) for n in range(10, 30)])
    assert len(results) == 20
    assert sandbox.counts("smtp")["accepted"] == 20


def test_refusals_are_per_recipient(sandbox: Sandbox) -> None:
    sandbox.faults("smtp", refused=["gone@example.com"])
    results = send(config(sandbox), [mail(40), mail(41, "gone@example.com"), mail(42)])
    assert results[40].outcome is results[42].outcome is Outcome.SENT
    assert (results[41].outcome, results[41].error_code) == (Outcome.PERMANENT, "smtp-550")


def test_4xx_answers_are_temporary(sandbox: Sandbox) -> None:
    sandbox.faults("smtp", error_rate=1)
    results = send(config(sandbox), [mail(50)])
    assert (results[50].outcome, results[50].error_code) == (Outcome.TEMPORARY, "smtp-451")
    sandbox.faults("smtp", error_rate=0, throttle_rate=1)
    results = send(config(sandbox), [mail(51)])
    assert (results[51].outcome, results[51].error_code) == (Outcome.TEMPORARY, "smtp-421")


def test_an_idle_connection_dropped_by_the_server_is_reopened(sandbox: Sandbox) -> None:
    # The sink drops connections idle for 2 s; the second round finds them gone.
    results = send(config(sandbox, pool_size=1), [mail(60)], [mail(61)], pause=2.5)
    assert results[60].outcome is results[61].outcome is Outcome.SENT
    assert sandbox.counts("smtp")["accepted"] == 2


def test_plain_smtp_and_a_dead_server(sandbox: Sandbox) -> None:
    from channels.sandbox.server import free_port

    results = send(config(sandbox, security="none"), [mail(70)])
    assert results[70].outcome is Outcome.SENT
    started = time.monotonic()
    dead = send(config(sandbox, port=free_port()), [mail(71)])
    assert (dead[71].outcome, dead[71].error_code) == (Outcome.TEMPORARY, "network")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"host": "no-such-host.invalid"}, "smtp_host"),
        ({"security": "ssl"}, "smtp_security"),
        ({"sender": "Powiadomienia"}, "smtp_from"),
        ({"pool_size": 0}, "smtp_pool_size"),
    ],
)
def test_bad_configuration_names_the_setting(
    sandbox: Sandbox, changes: dict[str, object], setting: str
) -> None:
    with pytest.raises(ChannelConfigError) as caught:
        SmtpEmailChannel(config(sandbox, **changes))
    assert caught.value.setting == setting


def test_auth_from_settings_over_starttls(sandbox: Sandbox) -> None:
    import ssl

    import trustme

    from channels.sandbox.server import free_port
    from channels.sandbox.smtp import SmtpSink

    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = sandbox.server.directory / "auth-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    sink = SmtpSink(username="broadcaster", password="s3cret", tls_context=context)
    port = free_port()

    async def run(password: str) -> list[DeliveryResult]:
        server = await asyncio.get_running_loop().create_server(sink.protocol, "127.0.0.1", port)
        try:
            cfg = config(
                sandbox, port=port, username="broadcaster", password=password, ca_file=str(ca_file)
            )
            return await _send_rounds(cfg, [[mail(80)]])
        finally:
            server.close()
            await server.wait_closed()
            # This loop also holds the sink's side of the connection: let it finish closing.
            await asyncio.sleep(0.2)

    [good] = asyncio.run(run("s3cret"))
    assert good.outcome is Outcome.SENT
    assert sink.counts()["accepted"] == 1
    [bad] = asyncio.run(run("wrong"))
    assert bad.outcome is Outcome.TEMPORARY
    assert bad.error_code == "smtp-auth-535"


@pytest.mark.parametrize("line_break", ["\r", "\n", "\r\n", "\u2028", "\u2029", "\x85", "\x0b"])
def test_a_subject_with_a_line_break_goes_out_on_one_line(
    sandbox: Sandbox, line_break: str
) -> None:
    from dataclasses import replace

    odd = replace(mail(1), title=f"Burza{line_break}nad Wolą")
    results = send(config(sandbox), [odd, mail(2)])
    assert {r.outcome for r in results.values()} == {Outcome.SENT}
    subjects = {m["address"]: m["subject"] for m in sandbox.messages("smtp")}
    assert subjects["resident1@example.com"] == "Burza nad Wolą"


def test_a_message_that_cannot_be_built_fails_alone(sandbox: Sandbox) -> None:
    from dataclasses import replace

    # A lone surrogate cannot be encoded in any header or body: that message fails for
    # good with a reason, its neighbours in the batch go out.
    broken = replace(mail(2), text="Burza \ud800")
    results = send(config(sandbox), [mail(1), broken, mail(3)])
    assert (results[2].outcome, results[2].error_code) == (Outcome.PERMANENT, "invalid-message")
    assert {results[1].outcome, results[3].outcome} == {Outcome.SENT}
    assert sandbox.counts("smtp")["accepted"] == 2
