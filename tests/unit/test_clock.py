"""Warsaw's clock: the one reading of a local time that the console and the CLI share."""

from datetime import UTC, datetime, timedelta

import pytest

from broadcaster import clock
from broadcaster.errors import InvalidInput


@pytest.mark.parametrize(
    ("typed", "moment"),
    [
        ("2027-01-10T18:00", datetime(2027, 1, 10, 17, 0, tzinfo=UTC)),  # winter, +01:00
        ("2027-07-10 18:00", datetime(2027, 7, 10, 16, 0, tzinfo=UTC)),  # summer, +02:00
        (" 2027-07-10T18:00 ", datetime(2027, 7, 10, 16, 0, tzinfo=UTC)),
        ("2027-03-28T01:59", datetime(2027, 3, 28, 0, 59, tzinfo=UTC)),  # just before the skip
        ("2027-03-28T03:00", datetime(2027, 3, 28, 1, 0, tzinfo=UTC)),  # just after it
        # The repeated autumn hour reads as its first pass, still on summer time...
        ("2027-10-31T02:30", datetime(2027, 10, 31, 0, 30, tzinfo=UTC)),
        # ...and an offset names the second.
        ("2027-10-31T02:30+01:00", datetime(2027, 10, 31, 1, 30, tzinfo=UTC)),
        ("2027-03-28T02:30+00:00", datetime(2027, 3, 28, 2, 30, tzinfo=UTC)),
    ],
)
def test_a_local_time_names_one_moment(typed: str, moment: datetime) -> None:
    # In UTC: an aware time in a repeated hour never equals one of another zone (PEP 495).
    assert clock.parse_local(typed, "send_at").astimezone(UTC) == moment


@pytest.mark.parametrize("typed", ["2027-03-28T02:00", "2027-03-28T02:30", "2030-03-31T02:59"])
def test_the_hour_the_clocks_skip_is_refused(typed: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        clock.parse_local(typed, "send_at")
    assert refused.value.field == "send_at"
    assert refused.value.message == "does not exist in Warsaw (the clocks go forward then)"
    assert refused.value.message_in("pl").startswith("nie istnieje w Warszawie")


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "tomorrow",
        "18:00",
        "2027-02-30T10:00",
        # fromisoformat would stop at the NUL and read midnight, or the skipped hour.
        "2027-01-01\x0002:30",
        "2027-03-28T02:30\x00",
        "2027-01-01T10:00\x1b",
        # The calendar's edges overflow on the way to UTC and back: no crash, a refusal.
        "0001-01-01T00:00",
        "9999-12-31T23:59",
        "9999-12-31T23:59-14:00",
    ],
)
def test_what_is_no_date_and_time_is_refused(typed: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        clock.parse_local(typed, "expires_at")
    assert refused.value.field == "expires_at"
    assert refused.value.message == "must be a date and time (YYYY-MM-DD HH:MM)"


def test_local_reads_a_naive_moment_as_utc() -> None:
    naive = datetime(2027, 1, 10, 17, 0)  # noqa: DTZ001 - as the database hands it back
    assert clock.local(naive).strftime("%H:%M") == "18:00"
    assert clock.local(datetime(2027, 7, 10, 16, 0, tzinfo=UTC)).strftime("%H:%M") == "18:00"


def test_now_is_on_warsaws_clock() -> None:
    moment = clock.now()
    assert moment.tzinfo is clock.WARSAW
    assert abs(moment - datetime.now(UTC)) < timedelta(seconds=5)
