"""Nothing of a resident outlives their erasure in any store: the whole system on its
embedded defaults (SQLite database, SQLite broker, one real Celery worker, the sandbox
providers), driven over HTTP through a sign-up, its proofs and a lost link, then an
erasure; then the files are searched byte by byte, and every message body the broker
still holds is decoded (kombu keeps bodies in base64) and searched too.

Redis is not searched: on the embedded defaults nothing uses it (the residents' limits
and the channels' rate buckets are kept in the processes).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

import httpx
from sqlalchemy.orm import Session

from broadcaster.db import migrate as schema
from broadcaster.db.engine import make_engine, make_sessionmaker
from broadcaster.dev.stack import Stack, running_stack
from broadcaster.reference.services import seed_reference_data
from broadcaster.residents.personal_data import erase_resident
from broadcaster.settings import load_settings
from tasks.app import make_app
from tests.conftest import TEST_SECRET, add_resident

PHONE = "601 234 987"
E164 = "+48601234987"
EMAIL = "Ewa.Zielinska@example.com"

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, stack: Stack, timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout} s; worker:\n{stack.worker_output()}")
        time.sleep(0.2)


def _stack(directory: Path) -> AbstractContextManager[Stack]:
    variables = {
        "DATABASE_URL": f"sqlite:///{directory / 'broadcaster.db'}",
        "BROKER_URL": f"sqla+sqlite:///{directory / 'broker.db'}",
        "WSP_SECRET_KEY": secrets.token_urlsafe(32),
        "WSP_ENV": "test",
    }

    def seed(session: Session) -> None:
        seed_reference_data(session=session)

    return running_stack(directory=directory, variables=variables, prepare=seed)


def _sms(stack: Stack, count: int) -> list[str]:
    sent = stack.sandbox.recorder("smsapi").messages(1000)
    texts = [str(m["text"]) for m in sent if m["address"] == E164.lstrip("+")]
    return texts if len(texts) >= count else []


def _mails(stack: Stack, count: int) -> list[str]:
    sent = stack.sandbox.recorder("smtp").messages(1000)
    raw = [str(m["raw"]) for m in sent if m["address"] == EMAIL.lower()]
    return raw if len(raw) >= count else []


def _token(after: str, text: str) -> str:
    # Quoted-printable mail may fold a long line ("=\n") and write "=" as "=3D".
    unfolded = text.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=")
    found = re.search(re.escape(after) + r"([A-Za-z0-9._-]+)", unfolded)
    assert found, f"no {after} link in {text!r}"
    return found.group(1)


def _live_through_a_resident(stack: Stack) -> list[str]:
    """Sign up, prove both addresses, ask for a lost link, erase; returns every secret
    the resident held: addresses in all their forms, the code, the links' tokens."""
    http = httpx.Client(base_url=stack.base_url, timeout=30)
    answer = http.post(
        "/residents/subscribe",
        json={
            "contacts": [
                {"channel": "sms", "address": PHONE},
                {"channel": "email", "address": EMAIL},
            ],
            "topics": ["weather-warning"],
            "districts": ["mokotow"],
        },
    )
    assert answer.status_code == 202, answer.text
    [code_sms] = eventually(lambda: _sms(stack, 1), "code by SMS", stack)
    code = re.search(r"\b(\d{6})\b", code_sms)
    assert code, code_sms
    [confirm_mail] = eventually(lambda: _mails(stack, 1), "confirmation mail", stack)
    confirm = _token("/residents/confirm/", confirm_mail)

    verified = http.post(
        "/residents/verify", json={"channel": "sms", "address": PHONE, "code": code.group(1)}
    )
    assert verified.status_code == 200, verified.text
    assert http.post(f"/residents/confirm/{confirm}").status_code == 200
    assert (
        http.post("/residents/links", json={"channel": "email", "address": EMAIL}).status_code
        == 202
    )
    texts = eventually(lambda: _sms(stack, 2), "manage link by SMS", stack)
    mails = eventually(lambda: _mails(stack, 3), "two manage links by e-mail", stack)
    manage = [_token("/my/", texts[1]), *(_token("/my/", mail) for mail in mails[1:])]

    assert http.delete(f"/manage/{manage[0]}").json() == {"status": "erased"}
    assert http.get(f"/manage/{manage[-1]}").status_code == 404
    http.close()
    return [
        E164,
        E164.lstrip("+"),
        PHONE.replace(" ", ""),
        EMAIL,
        EMAIL.lower(),
        code.group(1),
        confirm,
        *manage,
    ]


def _message_bodies(broker: Path) -> list[bytes]:
    """The decoded bodies of the messages the broker holds, and of any message text
    left anywhere in its file (a row deleted without being overwritten)."""
    bodies: list[bytes] = []
    connection = sqlite3.connect(broker)
    try:
        for (payload,) in connection.execute("SELECT payload FROM kombu_message"):
            bodies.append(base64.b64decode(json.loads(payload)["body"]))
    finally:
        connection.close()
    for found in re.finditer(rb'"body": "([A-Za-z0-9+/=]+)"', broker.read_bytes()):
        try:
            bodies.append(base64.b64decode(found.group(1)))
        except binascii.Error:
            continue
    return bodies


def _occurrences(secret: str, stores: dict[str, bytes]) -> list[str]:
    # A six-digit code counts where it stands alone, not inside a longer run of digits or
    # hex (a hash or a task id in the same file may hold the same six digits).
    pattern = re.compile(rb"(?<![0-9A-Za-z])" + re.escape(secret.encode()) + rb"(?![0-9A-Za-z])")
    return [name for name, content in stores.items() if pattern.search(content)]


def test_after_erasure_no_store_holds_the_residents_addresses_codes_or_links(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "stack"
    with _stack(directory) as stack:
        secrets_held = _live_through_a_resident(stack)
        # Let the worker finish what it was doing when the erasure was answered (it
        # forgets each notice once sent); then everything stops, and its files are what
        # is left on the disk.
        time.sleep(2)
        log = stack.worker_log

    files = [p for p in directory.iterdir() if p.name.startswith(("broadcaster.db", "broker.db"))]
    stores: dict[str, bytes] = {path.name: path.read_bytes() for path in sorted(files)}
    assert {"broadcaster.db", "broker.db"} <= set(stores)
    stores["the worker's log"] = log.read_bytes()
    for index, body in enumerate(_message_bodies(directory / "broker.db")):
        stores[f"broker message body {index}"] = body

    found = {secret: _occurrences(secret, stores) for secret in secrets_held}
    assert {secret: where for secret, where in found.items() if where} == {}


def test_the_embedded_broker_keeps_no_message_it_has_delivered(tmp_path: Path) -> None:
    """kombu's own transport keeps each delivered message, marked invisible; ours deletes
    it and overwrites it in the file, and a message left invisible before is deleted
    when the broker is opened."""
    path = tmp_path / "broker.db"
    url = f"sqla+sqlite:///{path}"
    app = make_app(load_settings({"WSP_ENV": "test", "BROKER_URL": url}))
    secret = "left-behind-" + secrets.token_hex(8)
    with app.connection_for_write() as connection:
        queue = connection.SimpleQueue("privacy-check")
        queue.put({"secret": secret})
        queue.put({"secret": secret + "-older"})
        message = queue.get(timeout=5)
        assert message.payload == {"secret": secret}
        message.ack()
        queue.close()
    raw = path.read_bytes()
    assert secret.encode() not in raw
    assert base64.b64encode(json.dumps({"secret": secret}).encode()) not in raw
    with sqlite3.connect(path) as broker:
        assert broker.execute("SELECT count(*) FROM kombu_message").fetchone() == (1,)
        # As kombu's transport leaves a delivered message.
        broker.execute("UPDATE kombu_message SET visible = 0")
    # Another process opens it (a worker starting).
    opening = (
        "from broadcaster.settings import load_settings; from tasks.app import make_app; "
        f"app = make_app(load_settings({{'WSP_ENV': 'test', 'BROKER_URL': {url!r}}})); "
        "c = app.connection_for_write(); c.SimpleQueue('privacy-check').close(); c.close()"
    )
    subprocess.run([sys.executable, "-c", opening], check=True, timeout=60)
    with sqlite3.connect(path) as broker:
        assert broker.execute("SELECT count(*) FROM kombu_message").fetchone() == (0,)


def test_an_erased_address_is_not_left_in_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "broadcaster.db"
    settings = load_settings(
        {"WSP_ENV": "test", "WSP_SECRET_KEY": TEST_SECRET, "DATABASE_URL": f"sqlite:///{path}"}
    )
    engine = make_engine(settings.database_url)
    schema.upgrade(engine, secret_key=TEST_SECRET)
    sessions = make_sessionmaker(engine, secret_key=TEST_SECRET)
    with sessions.begin() as session:
        seed_reference_data(session=session)
        resident = add_resident(
            session,
            settings,
            contacts=[("sms", E164), ("email", EMAIL)],
            topics=["weather-warning"],
            districts=["*"],
        )
    with sessions.begin() as session:
        erase_resident(session=session, subscriber_id=resident.id, actor="system:test")
    engine.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(path.name))
    for address in (E164, EMAIL.lower()):
        assert address.encode() not in raw
