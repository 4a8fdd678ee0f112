"""Column types shared by every domain's tables."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import BigInteger, Enum, Integer

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid), not a BIGINT one.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def sql_values(enum: type[StrEnum]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum)


def enum_column(enum: type[StrEnum], length: int) -> Enum:
    """A VARCHAR holding the enum's values, read back as members; the CHECK constraints
    are declared on each table by name."""
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda kind: [member.value for member in kind],
    )
