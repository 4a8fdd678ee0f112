"""Reference tables: districts and topics, and the languages we write in."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from broadcaster.db.engine import Base


class Language(StrEnum):
    PL = "pl"
    EN = "en"
    UK = "uk"


FALLBACK_LANGUAGE = Language.PL


class District(Base):
    __tablename__ = "districts"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    slug: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    residents: Mapped[int] = mapped_column(Integer)


class Topic(Base):
    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    slug: Mapped[str] = mapped_column(String(32), unique=True)
    name_pl: Mapped[str] = mapped_column(String(80))
    name_en: Mapped[str] = mapped_column(String(80))
    name_uk: Mapped[str] = mapped_column(String(80))
