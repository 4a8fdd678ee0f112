"""Reference data: Warsaw's 18 districts and the catalogue of alert topics.

Ids and slugs are stable: subscriptions, alerts and URLs refer to them. Residents are the
public GUS figures for June 2024 and weight the synthetic demo population.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.errors import InvalidInput
from broadcaster.reference.models import District, Topic


@dataclass(frozen=True, slots=True)
class DistrictInfo:
    id: int
    slug: str
    name: str
    residents: int


@dataclass(frozen=True, slots=True)
class TopicInfo:
    id: int
    slug: str
    name_pl: str
    name_en: str
    name_uk: str


DISTRICTS: tuple[DistrictInfo, ...] = (
    DistrictInfo(1, "bemowo", "Bemowo", 129146),
    DistrictInfo(2, "bialoleka", "Białołęka", 160386),
    DistrictInfo(3, "bielany", "Bielany", 130910),
    DistrictInfo(4, "mokotow", "Mokotów", 225149),
    DistrictInfo(5, "ochota", "Ochota", 79115),
    DistrictInfo(6, "praga-poludnie", "Praga-Południe", 185633),
    DistrictInfo(7, "praga-polnoc", "Praga-Północ", 59263),
    DistrictInfo(8, "rembertow", "Rembertów", 24888),
    DistrictInfo(9, "srodmiescie", "Śródmieście", 97073),
    DistrictInfo(10, "targowek", "Targówek", 122758),
    DistrictInfo(11, "ursus", "Ursus", 70248),
    DistrictInfo(12, "ursynow", "Ursynów", 149326),
    DistrictInfo(13, "wawer", "Wawer", 89166),
    DistrictInfo(14, "wesola", "Wesoła", 26659),
    DistrictInfo(15, "wilanow", "Wilanów", 52855),
    DistrictInfo(16, "wlochy", "Włochy", 50554),
    DistrictInfo(17, "wola", "Wola", 150588),
    DistrictInfo(18, "zoliborz", "Żoliborz", 58685),
)

TOPICS: tuple[TopicInfo, ...] = (
    TopicInfo(
        1,
        "water-outage",
        "Przerwy w dostawie wody",
        "Water supply outages",
        "Перебої з водопостачанням",
    ),
    TopicInfo(
        2, "heating-outage", "Przerwy w dostawie ciepła", "Heating outages", "Перебої з опаленням"
    ),
    TopicInfo(
        3, "power-outage", "Przerwy w dostawie prądu", "Power outages", "Відключення електроенергії"
    ),
    TopicInfo(
        4,
        "gas-outage",
        "Przerwy w dostawie gazu",
        "Gas supply outages",
        "Перебої з газопостачанням",
    ),
    TopicInfo(
        5, "public-transport", "Komunikacja miejska", "Public transport", "Громадський транспорт"
    ),
    TopicInfo(
        6,
        "road-traffic",
        "Utrudnienia w ruchu drogowym",
        "Road traffic disruptions",
        "Ускладнення дорожнього руху",
    ),
    TopicInfo(7, "roadworks", "Remonty i roboty drogowe", "Roadworks", "Дорожні роботи"),
    TopicInfo(
        8,
        "weather-warning",
        "Ostrzeżenia meteorologiczne",
        "Weather warnings",
        "Метеорологічні попередження",
    ),
    TopicInfo(9, "air-quality", "Jakość powietrza", "Air quality", "Якість повітря"),
    TopicInfo(
        10, "public-safety", "Bezpieczeństwo publiczne", "Public safety", "Громадська безпека"
    ),
    TopicInfo(
        11, "culture-events", "Kultura i wydarzenia", "Culture and events", "Культура та події"
    ),
    TopicInfo(12, "health", "Zdrowie", "Health", "Здоров'я"),
    TopicInfo(
        13,
        "city-services",
        "Sprawy urzędowe i terminy",
        "City services and deadlines",
        "Міські послуги та терміни",
    ),
)

DISTRICT_BY_SLUG = {district.slug: district for district in DISTRICTS}
TOPIC_BY_SLUG = {topic.slug: topic for topic in TOPICS}


def seed_reference_data(*, session: Session) -> tuple[int, int]:
    """Insert or refresh the districts and topics; returns how many rows were new."""
    new_districts = new_topics = 0
    existing_districts = {d.id: d for d in session.scalars(select(District))}
    for info in DISTRICTS:
        row = existing_districts.get(info.id)
        if row is None:
            session.add(
                District(id=info.id, slug=info.slug, name=info.name, residents=info.residents)
            )
            new_districts += 1
        else:
            row.slug, row.name, row.residents = info.slug, info.name, info.residents
    existing_topics = {t.id: t for t in session.scalars(select(Topic))}
    for topic in TOPICS:
        existing = existing_topics.get(topic.id)
        if existing is None:
            session.add(
                Topic(
                    id=topic.id,
                    slug=topic.slug,
                    name_pl=topic.name_pl,
                    name_en=topic.name_en,
                    name_uk=topic.name_uk,
                )
            )
            new_topics += 1
        else:
            existing.slug, existing.name_pl = topic.slug, topic.name_pl
            existing.name_en, existing.name_uk = topic.name_en, topic.name_uk
    session.flush()
    return new_districts, new_topics


def resolve_slugs(
    *, session: Session, model: type[District] | type[Topic], slugs: Iterable[str], field: str
) -> list[int]:
    """Ids for `slugs` in one query, in the order given, duplicates dropped.

    Raises InvalidInput naming `field` for the first slug that does not exist.
    """
    wanted = list(dict.fromkeys(slugs))
    if not wanted:
        raise InvalidInput(field, "must not be empty")
    known = dict(session.execute(select(model.slug, model.id).where(model.slug.in_(wanted))).all())
    for slug in wanted:
        if slug not in known:
            kind = "district" if model is District else "topic"
            raise InvalidInput(field, f"unknown {kind} {slug!r}")
    return [known[slug] for slug in wanted]
