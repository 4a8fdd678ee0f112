"""An alert's messages: what each language and channel variant says, and the preview an
approver sees before saying yes (SMS characters, encoding, parts, total parts).

Variants are rendered here once per (alert, language, channel); templates/ does the
rendering, this module only hands it plain data.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broadcaster import clock
from broadcaster.alerts.models import Alert, CapStatus
from broadcaster.dispatch.audience import audience_query, count_audience_by_language
from broadcaster.dispatch.profiles import PROFILES
from broadcaster.reference.models import District, Language
from broadcaster.wording import refusal, words
from channels import Channel
from subscribers.models import Subscription
from templates.renderer import LANGUAGES, AlertText, SmsVariant, render_sms

WHOLE_CITY = {"pl": "cała Warszawa", "en": "all of Warsaw", "uk": "уся Варшава"}


def alert_text(alert: Alert, language: str) -> AlertText:
    """The plain data the templates need for `alert` in `language` (Polish text when the
    alert has no translation, but labels in the resident's language)."""
    content = alert.content_for(language)
    topic = alert.topic
    topic_names = {"pl": topic.name_pl, "en": topic.name_en, "uk": topic.name_uk}
    area = (
        WHOLE_CITY.get(language, WHOLE_CITY["pl"])
        if alert.whole_city
        else ", ".join(district.name for district in alert.districts)
    )
    return AlertText(
        language=language,
        title=content.title,
        body=content.body,
        severity=alert.severity.value,
        topic=topic_names.get(language, topic.name_pl),
        area=area,
        expires_at=clock.local(alert.expires_at),
        exercise=alert.cap_status is not CapStatus.ACTUAL,
        transliterate_sms=alert.transliterate_sms,
        msg_type=alert.msg_type.value,
    )


@dataclass(frozen=True, slots=True)
class SmsTooLong:
    """An SMS variant that needs more parts than the provider is told to accept."""

    language: str
    parts: int
    limit: int
    field: str  # the text it is made of: contents.<language>.body

    def words(self) -> dict[str, str]:
        return words(
            "sms.too_many_parts", language=self.language, parts=self.parts, limit=self.limit
        )


def sms_over_limit(alert: Alert, variants: dict[str, SmsVariant], limit: int) -> list[SmsTooLong]:
    """The variants among `variants` (language -> rendered SMS) over `limit` parts."""
    return [
        SmsTooLong(
            language=language,
            parts=sms.shape.parts,
            limit=limit,
            field=f"contents.{alert.content_for(language).language}.body",
        )
        for language, sms in variants.items()
        if sms.shape.parts > limit
    ]


def check_sms_parts(*, alert: Alert, limit: int) -> None:
    """Refuse an alert whose SMS, in any language it may go out in, needs more than
    `limit` parts (settings.sms_max_parts, what the SMS channel sends as max_parts: the
    provider refuses a longer message for every recipient, SMSAPI with error 12).

    Every language, not only those of today's audience: residents change their language
    until the alert is planned, and an English or Ukrainian resident without a
    translation gets the Polish text with labels in their language. The one rule that
    composing, submitting, approving and the preview all apply.
    """
    if Channel.SMS not in alert.channels:
        return
    variants = {language: render_sms(alert_text(alert, language)) for language in LANGUAGES}
    over = sms_over_limit(alert, variants, limit)
    if over:
        first = over[0]
        raise refusal(
            first.field,
            "sms.too_many_parts",
            language=first.language,
            parts=first.parts,
            limit=first.limit,
        )


def count_audience_by_district(*, session: Session, alert: Alert) -> dict[str, dict[str, int]]:
    """district slug -> channel -> contact points that follow the alert's topic there.

    A resident who follows the topic in several of the targeted districts counts in each,
    so these add up to more than the audience; residents of an Update or Cancel who no
    longer follow the topic are in the audience but in no district.
    """
    audience = audience_query(alert).subquery()
    query = (
        select(District.slug, audience.c.channel, func.count())
        .join(Subscription, Subscription.subscriber_id == audience.c.subscriber_id)
        .join(District, District.id == Subscription.district_id)
        .where(Subscription.topic_id == alert.topic_id)
        .group_by(District.slug, audience.c.channel)
    )
    if not alert.whole_city:
        query = query.where(District.id.in_([district.id for district in alert.districts]))
    counts: dict[str, dict[str, int]] = {}
    for slug, channel, count in session.execute(query):
        counts.setdefault(slug, {})[channel] = int(count)
    return counts


def preview_alert(
    *,
    session: Session,
    alert: Alert,
    sms_max_parts: int,
    sms_part_price: Decimal | None = None,
) -> dict[str, Any]:
    """Every variant the alert will send, who receives which (per channel and district),
    and what its SMS will cost at `sms_part_price` per part, before approval.

    An SMS variant over `sms_max_parts` is marked (`over_limit`, with the problem and the
    remedy in every language) and shown even when nobody of today's audience reads that
    language: approval refuses it (`check_sms_parts`), and the approver sees why.
    """
    audience = count_audience_by_language(session=session, alert=alert)
    languages = {language for _, language in audience} | {Language.PL.value}
    sms_variants: dict[str, SmsVariant] = {}
    over: dict[str, SmsTooLong] = {}
    if Channel.SMS in alert.channels:
        sms_variants = {language: render_sms(alert_text(alert, language)) for language in LANGUAGES}
        over = {o.language: o for o in sms_over_limit(alert, sms_variants, sms_max_parts)}
        languages |= set(over)
    variants: dict[str, Any] = {}
    total_sms = total_parts = 0
    for language in sorted(languages):
        text = alert_text(alert, language)
        entry: dict[str, Any] = {}
        # The SMS variants were rendered above to count their parts: not rendered again.
        rendered = {Channel.SMS: sms_variants[language]} if sms_variants else {}
        for kind, profile in PROFILES.items():
            if kind in alert.channels:
                variant = rendered[kind] if kind in rendered else profile.render(text)
                entry[kind.value] = {
                    **profile.preview(variant),
                    "recipients": audience.get((kind.value, language), 0),
                }
        if Channel.SMS in alert.channels:
            # SMS alone has parts, a limit of parts the provider takes, and a price.
            sms = sms_variants[language]
            recipients = entry["sms"]["recipients"]
            entry["sms"].update(
                total_parts=sms.shape.parts * recipients,
                limit=sms_max_parts,
                over_limit=language in over,
                problem=None,
            )
            if language in over:
                remedy = "sms.shorten_only" if alert.transliterate_sms else "sms.shorten"
                entry["sms"]["problem"] = {
                    "field": over[language].field,
                    "messages": over[language].words(),
                    "remedy": words(remedy),
                }
            total_sms += recipients
            total_parts += sms.shape.parts * recipients
        variants[language] = entry
    by_channel: dict[str, int] = {}
    for (channel, _), count in audience.items():
        by_channel[channel] = by_channel.get(channel, 0) + count
    return {
        "alert_id": alert.id,
        "exercise": alert.cap_status is not CapStatus.ACTUAL,
        "audience": by_channel,
        "audience_by_district": count_audience_by_district(session=session, alert=alert),
        "variants": variants,
        "sms": {
            "limit": sms_max_parts,
            "over_limit": sorted(over),
            "recipients": total_sms,
            "total_parts": total_parts,
            "transliterated": alert.transliterate_sms,
            "estimated_cost_pln": (
                str((sms_part_price * total_parts).quantize(Decimal("0.01")))
                if sms_part_price is not None
                else None
            ),
        },
    }
