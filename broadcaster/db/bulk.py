"""Appending many rows at once: COPY on PostgreSQL, executemany elsewhere (SQLite)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert

RowWriter = Callable[[Sequence[tuple[Any, ...]]], None]


def row_writer(connection: Connection, table: Table, columns: Sequence[str]) -> RowWriter:
    """A function that appends rows (tuples in `columns` order) to `table` in the
    connection's transaction; call it once per chunk."""
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"

        def copy(rows: Sequence[tuple[Any, ...]]) -> None:
            with cursor.copy(statement) as stream:
                for row in rows:
                    stream.write_row(row)

        return copy

    def executemany(rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            connection.execute(
                insert(table), [dict(zip(columns, row, strict=True)) for row in rows]
            )

    return executemany
