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
"""

from __future__ import annotations

import sqlite3
from json import loads
from queue import Empty
from typing import Any

from kombu.transport import sqlalchemy as kombu_sqlalchemy
from kombu.utils.encoding import bytes_to_str
from sqlalchemy import Engine, delete, event, text


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
        opened = self.connection.client.hostname in self._engines
        engines = super()._open()
        if not opened:
            engine, _ = engines
            with engine.begin() as connection:
                connection.execute(
                    delete(self.message_cls.__table__).where(
                        self.message_cls.__table__.c.visible.is_(False)
                    )
                )
        return engines

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
