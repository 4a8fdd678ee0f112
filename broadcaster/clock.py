"""Warsaw's clock: the one time zone people read and write times in.

Every moment is stored, compared and sent in UTC; people see and type Warsaw's wall
clock (the console's forms, the CLI's options, a resident's quiet hours). This module is
the only one that names the zone, and `parse_local` is the one reading of a local time
that every face uses, so a time the console refuses the command line refuses too.
"""

from __future__ import annotations

from datetime import MAXYEAR, MINYEAR, UTC, datetime
from zoneinfo import ZoneInfo

from broadcaster.wording import refusal

WARSAW = ZoneInfo("Europe/Warsaw")


def now() -> datetime:
    """This moment on Warsaw's clock (aware, so it compares with any UTC moment)."""
    return datetime.now(WARSAW)


def local(moment: datetime) -> datetime:
    """`moment` on Warsaw's clock; a naive one is read as UTC, as the database keeps it."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(WARSAW)


def parse_local(value: str, field: str) -> datetime:
    """An ISO 8601 date and time (`2026-12-01T18:00`); without a UTC offset it is read as
    Warsaw's clock, with one it is taken as given. `field` names it in the refusal.

    The hour the clocks skip in spring (02:00-03:00 on the last Sunday of March) names no
    moment: it is refused rather than guessed. The hour repeated in autumn reads as its
    first pass, still on summer time (+02:00); an offset names the second.
    """
    # fromisoformat stops reading at a NUL ("2027-01-01\x0002:30" would be midnight):
    # a control character is no part of a time. Years at the calendar's edges are no
    # time an alert is sent or expires at, and would overflow moving to UTC and back.
    if any(ord(character) < 32 or ord(character) == 127 for character in value):
        raise refusal(field, "time.not_a_time")
    try:
        moment = datetime.fromisoformat(value.strip())
        if not MINYEAR < moment.year < MAXYEAR:
            raise ValueError(value)
        read = moment if moment.tzinfo is not None else moment.replace(tzinfo=WARSAW)
        # A skipped wall-clock time does not come back from the round trip through UTC.
        back = read.astimezone(UTC).astimezone(WARSAW).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise refusal(field, "time.not_a_time") from None
    if moment.tzinfo is None and back != moment:
        raise refusal(field, "time.skipped")
    return read
