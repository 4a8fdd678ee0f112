"""`broadcaster demo`: the system's main path on embedded defaults, with a report.

On a fresh SQLite file under the data folder (or on DATABASE_URL when it is set): migrate,
seed the reference data and a synthetic population, write a Polish weather warning for a
few districts as one operator, approve it as another, and report who it reaches per
channel and language, then verify the audit trail.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from broadcaster import alerts, audit, operators, population, schema
from broadcaster.alerts import AlertDraft
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.models import Operator
from broadcaster.settings import Environment, Settings
from broadcaster.targeting import stream_audience

DEMO_DISTRICTS = ("mokotow", "ursynow", "wilanow", "srodmiescie")
DEMO_STAFF = (
    ("demo-operator", "operator", "Operator dyżurny"),
    ("demo-approver", "approver", "Kierownik zmiany"),
)


@dataclass(frozen=True, slots=True)
class DemoReport:
    database: str
    residents_added: int
    alert: dict[str, Any]
    audience_by_channel: dict[str, int]
    audience_by_language: dict[str, int]
    audit: str
    audit_intact: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "residents_added": self.residents_added,
            "alert": self.alert,
            "audience": {
                "by_channel": self.audience_by_channel,
                "by_language": self.audience_by_language,
                "total": sum(self.audience_by_channel.values()),
            },
            "audit": {"verdict": self.audit, "intact": self.audit_intact},
        }


def demo_database_url(settings: Settings) -> tuple[str, Path | None]:
    """The demo's own fresh SQLite file, unless DATABASE_URL points elsewhere."""
    default = f"sqlite:///{settings.data_dir}/broadcaster.db"
    if settings.database_url != default:
        return settings.database_url, None
    path = settings.data_dir / "demo.db"
    return f"sqlite:///{path}", path


def _staff(session: Session) -> list[Operator]:
    people = []
    for username, role, name in DEMO_STAFF:
        try:
            people.append(operators.get_operator(session=session, username=username))
        except NotFound:
            people.append(
                operators.create_operator(
                    session=session,
                    username=username,
                    role=role,
                    display_name=name,
                    created_by="system:demo",
                )
            )
    return people


def run_demo(
    *,
    settings: Settings,
    engine: Engine,
    sessions: sessionmaker[Session],
    residents: int,
    progress: Any = None,
) -> DemoReport:
    if settings.env is Environment.PRODUCTION:
        raise InvalidInput("WSP_ENV", "the demo adds synthetic residents: never in production")
    schema.upgrade(engine)
    with sessions.begin() as session:
        population.seed_population(session=session, count=residents, progress=progress)

    now = datetime.now(UTC)
    draft = AlertDraft(
        topic="weather-warning",
        districts=DEMO_DISTRICTS,
        severity="Severe",
        urgency="Expected",
        channels=["sms", "push", "email"],
        contents={
            "pl": (
                "Ostrzeżenie IMGW: silne burze z gradem",
                "Dziś od 17:00 do 23:00 silne burze z gradem i porywami wiatru do 90 km/h. "
                "Zabezpiecz balkony, nie parkuj pod drzewami. Telefon alarmowy: 112.",
            ),
            "en": (
                "Weather warning: severe thunderstorms with hail",
                "Today 17:00-23:00 severe thunderstorms, hail and gusts up to 90 km/h. "
                "Secure balconies, do not park under trees. Emergency: 112.",
            ),
            "uk": (
                "Метеопопередження: сильні грози з градом",
                "Сьогодні з 17:00 до 23:00 сильні грози з градом і поривами вітру до 90 км/год. "
                "Екстрений номер: 112.",
            ),
        },
        expires_at=now + timedelta(hours=8),
    )
    with sessions.begin() as session:
        author, approver = _staff(session)
        alert = alerts.create_alert(session=session, settings=settings, author=author, draft=draft)
        alerts.submit_alert(session=session, actor=author, alert_id=alert.id)
    # Each person acts in a transaction of their own, as they would through the console.
    with sessions.begin() as session:
        alerts.approve_alert(session=session, approver=approver, alert_id=alert.id)
    with sessions() as session:
        alert = alerts.get_alert(session=session, alert_id=alert.id)
        by_channel: Counter[str] = Counter()
        by_language: Counter[str] = Counter()
        for batch in stream_audience(session=session, alert=alert):
            by_channel.update(member.channel for member in batch)
            by_language.update(member.language for member in batch)
        view = alerts.describe_alert(alert)
        view["title_pl"] = view.pop("contents")["pl"]["title"]
    with sessions() as session:
        verdict = audit.verify_chain(session=session)
    return DemoReport(
        database=engine.url.render_as_string(hide_password=True),
        residents_added=residents,
        alert=view,
        audience_by_channel=dict(sorted(by_channel.items())),
        audience_by_language=dict(sorted(by_language.items())),
        audit=verdict.describe(),
        audit_intact=verdict.intact,
    )
