"""Rendering a batch's variants: each (alert, language, channel) once per worker; each
channel's profile (profiles.py) turns a variant into one recipient's message."""

from __future__ import annotations

from typing import Any

from broadcaster.alerts.messages import alert_text
from broadcaster.alerts.models import Alert
from broadcaster.dispatch.profiles import PROFILES
from channels.interfaces import Channel


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
            self.cache[key] = PROFILES[channel].render(alert_text(alert, language))
        return self.cache[key]
