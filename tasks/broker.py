"""The embedded broker (`sqla+sqlite://`, `sqla+postgresql://`): kombu's SQLAlchemy
transport, except that a message taken from a queue is deleted, not kept.

kombu marks a message it hands to a worker `visible = false` and never reads it again,
nor deletes it: the table keeps every message ever sent. Deleting it in the same
transaction changes nothing about delivery (an unacknowledged message is put back from
the worker's memory, as a new row, when the worker stops), and keeps the broker from
becoming a record of everything the system did. Rows an older version left invisible
are deleted when a process first opens the broker. On SQLite, deleted rows are
overwritten with zeros (`secure_delete`), so that they are not left in the file's free
space either.

Creating the broker's tables and queue rows is safe when several processes do it at
once (a worker, beat and the API starting together): kombu checks, then creates, and the
loser of that race got an IntegrityError (a queue row) or "table already exists" and, for
a queue row, a session no later call could use. Whoever starts a stack declares the
queues once, before the worker and beat (`declare_queues`), so that neither has to.
"""

from __future__ import annotations

import sqlite3
from json import loads
from queue import Empty
from typing import Any

from celery import Celery
from kombu.transport import sqlalchemy as kombu_sqlalchemy
from kombu.transport.sqlalchemy.models import metadata as kombu_metadata
from kombu.utils.encoding import bytes_to_str
from sqlalchemy import Engine, delete, event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import sessionmaker


def _secure_delete(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA secure_delete = ON")
    cursor.close()


class Channel(kombu_sqlalchemy.Channel):
    """kombu's channel, deleting what it delivers."""

    def _engine_from_config(self) -> Engine:
        engine: Engine = super()._engine_from_config()
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _secure_delete)
        return engine

    def _open(self) -> Any:
        hostname = self.connection.client.hostname
        with kombu_sqlalchemy._MUTEX:
            if hostname not in self._engines:
                engine = self._engine_from_config()
                _create_tables(engine)
                with engine.begin() as connection:
                    connection.execute(
                        delete(self.message_cls.__table__).where(
                            self.message_cls.__table__.c.visible.is_(False)
                        )
                    )
                self._engines[hostname] = engine, sessionmaker(bind=engine)
        return self._engines[hostname]

    def _get_or_create(self, queue: str) -> Any:
        """The row of `queue`, created if missing. Another process may create it between
        this one's look and its insert: the unique name refuses the second row, and the
        first one is what both get (kombu let the IntegrityError out, and left the
        session unusable)."""
        found = self._find_queue(queue)
        if found is not None:
            return found
        with kombu_sqlalchemy._MUTEX:
            self.session.add(self.queue_cls(queue))
            try:
                self.session.commit()
            except IntegrityError:
                self.session.rollback()
            except OperationalError:
                # kombu returned a row it never wrote (a database locked past its busy
                # timeout): the caller is told instead, as kombu tells a failed publish.
                self.session.rollback()
                raise
        found = self._find_queue(queue)
        if found is None:  # pragma: no cover - the unique name was refused for it
            raise LookupError(f"the broker has no queue {queue!r} after creating it")
        return found

    def _find_queue(self, queue: str) -> Any:
        return self.session.query(self.queue_cls).filter(self.queue_cls.name == queue).first()

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        found = self._get_or_create(queue)
        if self.session.bind.name == "sqlite":
            self.session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
        try:
            message = (
                self.session.query(self.message_cls)
                .with_for_update()
                .filter(self.message_cls.queue_id == found.id)
                .filter(self.message_cls.visible.is_not(False))
                .order_by(self.message_cls.sent_at)
                .order_by(self.message_cls.id)
                .limit(1)
                .first()
            )
            if message is None:
                raise Empty()
            payload = loads(bytes_to_str(message.payload))
            self.session.delete(message)
            return payload
        finally:
            self.session.commit()


class Transport(kombu_sqlalchemy.Transport):
    Channel = Channel


def _create_tables(engine: Engine) -> None:
    """kombu's tables, whoever else creates them at the same moment. `create_all` checks,
    then creates, so a concurrent creator can come in between and this pass fails; each
    such failure means another table now exists, which the next pass skips."""
    attempts = len(kombu_metadata.tables) + 1
    for attempt in range(1, attempts + 1):
        try:
            kombu_metadata.create_all(engine)
            return
        except DBAPIError:
            if attempt == attempts:
                raise


def declare_queues(app: Celery) -> list[str]:
    """Declare every queue of `app` on its broker (on the embedded one: its tables and a
    row per queue) and return their names. Idempotent, and safe to run from several
    processes at once; run before a worker and beat start, so neither creates them."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in app.conf.task_queues:
            queue.bind(channel).declare()
    return [queue.name for queue in app.conf.task_queues]
