"""Rendering a batch's messages: each (alert, language, channel) variant once, then one
`Message` per recipient in the shape its channel sends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broadcaster.alerts.messages import alert_text
from broadcaster.alerts.models import Alert
from channels.interfaces import Channel, Message
from templates.renderer import render_email, render_push, render_sms


class Variants:
    """Rendered variants per (alert, language, channel), kept for the worker's life: each
    variant is rendered once however many batches use it."""

    def __init__(self, limit: int = 256) -> None:
        self.cache: dict[tuple[int, str, str], Any] = {}
        self.limit = limit

    def get(self, alert: Alert, language: str, channel: Channel) -> Any:
        key = (alert.id, language, channel.value)
        if key not in self.cache:
            if len(self.cache) >= self.limit:
                self.cache.clear()
            renderers: dict[Channel, Callable[[Any], Any]] = {
                Channel.SMS: render_sms,
                Channel.PUSH: render_push,
                Channel.EMAIL: render_email,
            }
            self.cache[key] = renderers[channel](alert_text(alert, language))
        return self.cache[key]


def build_message(
    channel: Channel,
    variant: Any,
    delivery_id: int,
    address: str,
    alert: Alert,
    urgent: bool,
    unsubscribe: str,
) -> Message:
    """One recipient's message of a rendered variant (an e-mail with its own link)."""
    data = {"alert_id": str(alert.id), "severity": alert.severity.value}
    if channel is Channel.SMS:
        return Message(delivery_id, address, text=variant.text)
    if channel is Channel.PUSH:
        return Message(
            delivery_id,
            address,
            text=variant.body,
            title=variant.title,
            urgent=urgent,
            expires_at=alert.expires_at,
            data=data,
        )
    text, html = variant.for_recipient(unsubscribe)
    return Message(
        delivery_id,
        address,
        text=text,
        title=variant.subject,
        html=html,
        unsubscribe_url=unsubscribe,
        urgent=urgent,
        data=data,
    )
