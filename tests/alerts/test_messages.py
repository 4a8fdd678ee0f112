"""An alert's texts as the templates get them: the time residents read is Warsaw's."""

from __future__ import annotations

from datetime import UTC, datetime

from broadcaster.alerts.messages import alert_text
from broadcaster.alerts.models import Alert, AlertContent, CapStatus, MsgType, Severity
from broadcaster.reference.models import District, Topic
from templates.renderer import render_email, render_sms


def _alert(expires_at: datetime) -> Alert:
    return Alert(
        id=3,
        severity=Severity.SEVERE,
        cap_status=CapStatus.ACTUAL,
        msg_type=MsgType.ALERT,
        whole_city=False,
        transliterate_sms=False,
        expires_at=expires_at,
        topic=Topic(slug="weather", name_pl="Pogoda", name_en="Weather", name_uk="Погода"),
        districts=[District(slug="wola", name="Wola", residents=1)],
        contents=[AlertContent(language="pl", title="Burza", body="Zostań w domu.")],
    )


def test_the_expiry_is_printed_on_warsaws_clock_in_summer_and_in_winter() -> None:
    summer = alert_text(_alert(datetime(2027, 7, 1, 16, 30, tzinfo=UTC)), "pl")
    winter = alert_text(_alert(datetime(2027, 1, 15, 16, 30, tzinfo=UTC)), "pl")
    assert "Ważne do: 01.07.2027 18:30" in render_email(summer).text
    assert "Ważne do: 15.01.2027 17:30" in render_email(winter).text


def test_a_time_the_database_gave_without_its_zone_is_read_as_utc() -> None:
    naive = alert_text(_alert(datetime(2027, 7, 1, 16, 30)), "pl")  # noqa: DTZ001
    assert naive.expires_at.utcoffset() is not None
    assert naive.expires_at.hour == 18
    assert render_sms(naive).text.startswith("Burza")
