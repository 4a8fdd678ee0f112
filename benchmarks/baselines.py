"""What the pipeline is compared against: the ceiling of the SMTP client alone, and Apprise
(the popular Python notification library) sending the same e-mails and pushes.

  aiosmtplib_alone  aiosmtplib with a few reused connections (8 by default), messages
                    handed out to whichever connection is free: as fast as one process
                    moves e-mail to this SMTP sink, with nothing else to do.
  apprise_email     `Apprise()`, `.add("mailto://...")`, `.notify(body=, title=)` for each
                    message in turn, as a project using Apprise writes it. Plain SMTP
                    (`mode=insecure`, no STARTTLS). Apprise opens and closes an SMTP
                    connection for every notify; with several recipients in one URL it
                    sends them all over that one connection (`recipients_per_notify`).
  apprise_push      the same pattern with `fcm://`, to the sandbox's TLS FCM endpoint.
The naive Celery design (one task per recipient) is in benchmarks/naive.py.

Apprise's FCM plugin cannot be pointed at the sandbox by configuration: the send URL is
hard-coded in apprise/plugins/fcm/__init__.py as the class attribute
`NotifyFCM.notify_oauth2_url = "https://fcm.googleapis.com/v1/projects/{project}/messages:send"`
(legacy mode: `notify_legacy_url = "https://fcm.googleapis.com/fcm/send"`), and no URL
argument, environment variable or asset setting replaces it; only the OAuth token
endpoint follows the keyfile's `token_uri`. `apprise_push` therefore overrides that one
attribute on the plugin instance Apprise built from an ordinary fcm:// URL: no Apprise
file or class changes, but it is outside Apprise's documented interface. APPRISE_FCM_NOTE
says the same for a report.

Every function takes the sandbox's control URL (`{WSP_SMSAPI_URL}_sandbox`; the sandbox
has no setting of its own for it) as `control_url`: given it, the function resets that
provider's counters first and fails unless the sandbox accepted every message once, and
returns the counts under "sandbox". Recipients are distinct within a run.

Try it: .venv/bin/python -m benchmarks.baselines [--messages N] [--apprise-messages N]

Past 400 lines, kept whole: a benchmark is one script, run and read top to bottom,
its stages in the order it measures them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiosmtplib
import apprise
import psycopg
import requests
from apprise.plugins.fcm import NotifyFCM
from sqlalchemy.engine import make_url

from benchmarks.naive import DEFAULT_BROKER, DEFAULT_DATABASE, run_naive_sms
from benchmarks.sandbox_process import sandbox_process
from broadcaster.alerts import lifecycle
from broadcaster.alerts import services as alerts
from broadcaster.db import migrate as schema
from broadcaster.db.engine import make_engine, make_sessionmaker
from broadcaster.dev import population
from broadcaster.dev.demo import weather_warning
from broadcaster.dispatch.planning import plan_alert
from broadcaster.settings import Settings
from broadcaster.staff import operators
from templates.renderer import AlertText, EmailVariant, render_email, render_push

SENDER = "powiadomienia@um.warszawa.pl"
FCM_PROJECT = "wsp-sandbox"

APPRISE_FCM_NOTE = (
    "Apprise's FCM plugin cannot be pointed at another server by configuration. The "
    "endpoint is hard-coded in apprise/plugins/fcm/__init__.py as the class attribute "
    "NotifyFCM.notify_oauth2_url = "
    "'https://fcm.googleapis.com/v1/projects/{project}/messages:send' (legacy mode: "
    "NotifyFCM.notify_legacy_url = 'https://fcm.googleapis.com/fcm/send'), read by "
    "NotifyFCM.send(); no fcm:// URL argument, environment variable or AppriseAsset "
    "setting changes it. Only the OAuth token endpoint follows the keyfile (its "
    "'token_uri', in apprise/plugins/fcm/oauth.py). So apprise_push builds the plugin "
    "from an ordinary fcm:// URL and then overrides notify_oauth2_url on that one "
    "instance: no Apprise file or class is changed, and the rest of Apprise's send path "
    "(OAuth JWT and token exchange, payload, one requests.post per token with a new TLS "
    "connection) runs as shipped - but a project could not do this through Apprise's "
    "documented interface. The TLS certificate is checked against the sandbox's CA "
    "through REQUESTS_CA_BUNDLE, set for the duration of the run. Apprise spaces "
    "requests of one plugin instance 5.5 s apart (NotifyBase.request_rate_per_sec), so "
    "several tokens in one fcm:// URL would be throttled; one Apprise per message "
    "avoids that but fetches a fresh OAuth token for every message."
)


def _alert_text(language: str = "pl") -> AlertText:
    """The demo's weather warning, as our templates render it for a resident."""
    title, body = weather_warning(datetime.now(UTC)).contents[language]
    return AlertText(
        language=language,
        title=title,
        body=body,
        severity="Severe",
        topic="Ostrzeżenia pogodowe",
        area="Mokotów, Ursynów, Wilanów, Śródmieście",
        expires_at=datetime.now(UTC) + timedelta(hours=8),
    )


def _reset_sandbox(control_url: str | None, provider: str) -> None:
    if control_url is not None:
        requests.post(f"{control_url}/{provider}/reset", timeout=10).raise_for_status()


def _sandbox_counts(control_url: str | None, provider: str) -> dict[str, Any]:
    if control_url is None:
        return {}
    response = requests.get(f"{control_url}/{provider}/counts", timeout=10)
    response.raise_for_status()
    counts: dict[str, Any] = response.json()
    return counts


def _result(
    messages: int, seconds: float, control_url: str | None, provider: str, **extra: Any
) -> dict[str, Any]:
    """The figures, with the sandbox's counts checked when there is a sandbox to ask."""
    counts = _sandbox_counts(control_url, provider)
    if counts and (counts["accepted"] != messages or counts["duplicates"]):
        raise RuntimeError(f"{provider}: sent {messages}, the sandbox counted {counts}")
    result = {"messages": messages, "seconds": seconds, "per_second": messages / seconds}
    return {**result, **extra, **({"sandbox": counts} if counts else {})}


def _email(text: EmailVariant, recipient: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Powiadomienia Warszawa <{SENDER}>"
    message["To"] = recipient
    message["Subject"] = text.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain="um.warszawa.pl")
    message.set_content(text.text)
    return message


async def aiosmtplib_alone(
    host: str,
    port: int,
    messages: int,
    connections: int = 8,
    *,
    ca_file: str | None = None,
    control_url: str | None = None,
) -> dict[str, Any]:
    """Send `messages` small text e-mails over `connections` reused SMTP connections.

    Messages are built and connections opened before the clock starts: this is the ceiling
    of moving mail, not of preparing it. Plain SMTP, or STARTTLS checked against `ca_file`
    when one is given (our pipeline's setting against the sandbox).
    """
    _reset_sandbox(control_url, "smtp")
    text = render_email(_alert_text())
    run = secrets.token_hex(3)
    queue = iter([_email(text, f"alone-{run}-{n:07d}@example.com") for n in range(messages)])
    clients = [
        aiosmtplib.SMTP(
            hostname=host,
            port=port,
            start_tls=ca_file is not None,
            cert_bundle=ca_file,
            local_hostname="bench.local",
        )
        for _ in range(connections)
    ]
    await asyncio.gather(*(client.connect() for client in clients))

    async def drain(client: aiosmtplib.SMTP) -> None:
        # One shared iterator: whichever connection is free takes the next message.
        for message in queue:
            await client.send_message(message)

    started = time.perf_counter()
    await asyncio.gather(*(drain(client) for client in clients))
    seconds = time.perf_counter() - started
    await asyncio.gather(*(client.quit() for client in clients))
    return _result(
        messages, seconds, control_url, "smtp", connections=connections, starttls=bool(ca_file)
    )


def apprise_email(
    host: str,
    port: int,
    messages: int,
    *,
    recipients_per_notify: int = 1,
    control_url: str | None = None,
) -> dict[str, Any]:
    """Send `messages` e-mails through Apprise, one `Apprise()` and `.notify()` after another.

    With `recipients_per_notify` = 1 (the default) every message is its own notify and so
    its own SMTP connection; a larger value lists that many recipients in one mailto:// URL,
    which Apprise sends over one connection (its best case).

    What a connection costs here is Apprise's as shipped: smtplib's connect, EHLO and QUIT,
    and (Apprise 2.x) an `ssl.create_default_context()` built for every connection even in
    `mode=insecure`, which loads the system CA store each time (tens of ms on this machine).
    """
    _reset_sandbox(control_url, "smtp")
    text = render_email(_alert_text())
    run = secrets.token_hex(3)
    recipients = [f"apprise-{run}-{n:07d}@example.com" for n in range(messages)]
    failed = 0
    started = time.perf_counter()
    for start in range(0, messages, recipients_per_notify):
        group = recipients[start : start + recipients_per_notify]
        query = urlencode({"mode": "insecure", "from": SENDER, "to": ",".join(group)})
        notifier = apprise.Apprise()
        if not notifier.add(f"mailto://{host}:{port}/?{query}"):
            raise ValueError("Apprise refused the mailto:// URL")
        if not notifier.notify(body=text.text, title=text.subject):
            failed += len(group)
    seconds = time.perf_counter() - started
    if failed:
        raise RuntimeError(f"Apprise reported {failed} of {messages} e-mails failed")
    return _result(
        messages,
        seconds,
        control_url,
        "smtp",
        recipients_per_notify=recipients_per_notify,
        apprise=apprise.__version__,
    )


@contextmanager
def _trusting(ca_file: str) -> Iterator[None]:
    """requests (and so Apprise) trusts `ca_file` while inside; the old value comes back."""
    saved = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = ca_file
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = saved


def apprise_push(
    fcm_endpoint: str,
    credentials_file: str,
    ca_file: str,
    messages: int,
    *,
    project_id: str = FCM_PROJECT,
    control_url: str | None = None,
) -> dict[str, Any]:
    """Send `messages` pushes through Apprise's FCM plugin (OAuth2 mode, a service-account
    keyfile), one `Apprise()` and `.notify()` per device token, to the sandbox's TLS FCM
    endpoint. How the plugin is redirected there: APPRISE_FCM_NOTE."""
    _reset_sandbox(control_url, "fcm")
    push = render_push(_alert_text())
    run = secrets.token_hex(3)
    tokens = [f"apprise-{run}-{n:07d}-APA91b{'x' * 100}" for n in range(messages)]
    send_url = f"{fcm_endpoint.rstrip('/')}/v1/projects/{{project}}/messages:send"
    keyfile = quote(credentials_file, safe="")
    failed = 0
    with _trusting(ca_file):
        started = time.perf_counter()
        for token in tokens:
            notifier = apprise.Apprise()
            if not notifier.add(f"fcm://{project_id}/{token}?keyfile={keyfile}"):
                raise ValueError("Apprise refused the fcm:// URL")
            plugin = notifier[0]
            assert isinstance(plugin, NotifyFCM)
            plugin.notify_oauth2_url = send_url  # the one change: see APPRISE_FCM_NOTE
            if not notifier.notify(body=push.body, title=push.title):
                failed += 1
        seconds = time.perf_counter() - started
    if failed:
        raise RuntimeError(f"Apprise reported {failed} of {messages} pushes failed")
    return _result(messages, seconds, control_url, "fcm", apprise=apprise.__version__)


# -- a small run: `python -m benchmarks.baselines` ------------------------------------------


def fresh_database(url: str) -> None:
    """Drop and create the database that `url` names (on the same server)."""
    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres")
    name = parsed.database
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')


def prepare_sms_alert(database_url: str, residents: int) -> int:
    """On a fresh database (it creates its own two operators): seed `residents` synthetic
    residents, then write, approve (a second person) and plan a whole-city, SMS-only
    weather warning - severe, so no delivery waits for quiet hours; returns its id."""
    settings = Settings()
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine, secret_key=settings.secret_key)
    try:
        schema.upgrade(engine, secret_key=settings.secret_key)
        with sessions.begin() as session:
            population.seed_population(session=session, count=residents)
            staff = [
                operators.create_operator(
                    session=session,
                    username=username,
                    display_name=username,
                    role=role,
                    created_by="system:bench",
                )
                for username, role in (
                    ("bench-operator", "operator"),
                    ("bench-approver", "approver"),
                )
            ]
            draft = dataclasses.replace(
                weather_warning(datetime.now(UTC)), channels=["sms"], whole_city=True, districts=()
            )
            alert = alerts.create_alert(
                session=session, settings=settings, author=staff[0], draft=draft
            )
            lifecycle.submit_alert(
                session=session, settings=settings, actor=staff[0], alert_id=alert.id
            )
            alert_id = alert.id
        with sessions.begin() as session:
            approver = operators.get_operator(session=session, username="bench-approver")
            lifecycle.approve_alert(
                session=session, settings=settings, approver=approver, alert_id=alert_id
            )
        plan_alert(sessions=sessions, alert_id=alert_id)
    finally:
        engine.dispose()
    return alert_id


def _figures(name: str, result: dict[str, Any]) -> None:
    shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
    print(f"{name:<28} {shown['per_second']:>9.1f} msg/s  {json.dumps(shown)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="aiosmtplib and naive SMS")
    parser.add_argument("--apprise-messages", type=int, default=300)
    parser.add_argument(
        "--only", choices=("smtp", "apprise", "naive"), action="append", help="repeatable"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_NAIVE_DATABASE_URL", DEFAULT_DATABASE),
        help="the naive run's database: dropped and created afresh",
    )
    parser.add_argument(
        "--broker-url", default=os.environ.get("BENCH_NAIVE_BROKER", DEFAULT_BROKER)
    )
    arguments = parser.parse_args()
    stages = set(arguments.only or ("smtp", "apprise", "naive"))
    n, a = arguments.messages, arguments.apprise_messages

    with (
        tempfile.TemporaryDirectory(prefix="wsp-baselines-") as directory,
        sandbox_process(Path(directory)) as environment,
    ):
        control = f"{environment['WSP_SMSAPI_URL']}_sandbox"
        host, port = environment["WSP_SMTP_HOST"], int(environment["WSP_SMTP_PORT"])
        if "smtp" in stages:
            plain = aiosmtplib_alone(host, port, n, control_url=control)
            _figures("aiosmtplib x8, plain", asyncio.run(plain))
            tls = aiosmtplib_alone(
                host, port, n, ca_file=environment["WSP_SMTP_CA_FILE"], control_url=control
            )
            _figures("aiosmtplib x8, STARTTLS", asyncio.run(tls))
        if "apprise" in stages:
            _figures("apprise mailto, 1/notify", apprise_email(host, port, a, control_url=control))
            _figures(
                "apprise mailto, 100/notify",
                apprise_email(host, port, a, recipients_per_notify=100, control_url=control),
            )
            push = apprise_push(
                environment["WSP_FCM_ENDPOINT"],
                environment["WSP_FCM_CREDENTIALS_FILE"],
                environment["WSP_FCM_CA_FILE"],
                a,
                project_id=environment["WSP_FCM_PROJECT_ID"],
                control_url=control,
            )
            _figures("apprise fcm (redirected)", push)
            print(APPRISE_FCM_NOTE)
        if "naive" in stages:
            fresh_database(arguments.database_url)
            alert_id = prepare_sms_alert(arguments.database_url, residents=max(2 * n, 1000))
            naive = run_naive_sms(
                arguments.database_url, arguments.broker_url, environment, alert_id, n
            )
            _figures("naive celery sms, -c 2", naive)


if __name__ == "__main__":
    main()
