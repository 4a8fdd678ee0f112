"""The residents' flows called directly, as a face calls them, over a real database
(SQLite and PostgreSQL); what they hand to a worker is collected, not run."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.ratelimit import LocalKeyedLimiter
from broadcaster.residents.limits import Limits
from broadcaster.residents.services import Residents
from broadcaster.settings import Settings
from subscribers.pending import Queued


@dataclass
class Handed:
    """What the flows handed to the workers, in order."""

    queued: list[Queued] = field(default_factory=list)

    def __call__(self, queued: object) -> None:
        self.queued.extend(queued)  # type: ignore[call-overload]


@pytest.fixture
def handed() -> Handed:
    return Handed()


@pytest.fixture
def residents(db: sessionmaker[Session], settings: Settings, handed: Handed) -> Residents:
    return Residents(
        settings=settings,
        sessions=db,
        limits=Limits(settings, LocalKeyedLimiter()),
        hand_off=handed,
    )
