"""What the residents' flows take and give, as both faces read it: the JSON bodies of the
API and the forms of the pages are checked by the same models, so a sign-up is refused
for the same reasons whoever sends it."""

from __future__ import annotations

from datetime import time as clock
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from broadcaster.reference.models import Language
from channels import Channel


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# A topic or district slug ("*" for the whole city); anything else is refused before
# the database sees it.
Slug = Annotated[str, Field(pattern=r"^(\*|[a-z0-9][a-z0-9-]{0,31})$")]


class ContactIn(Strict):
    channel: Channel
    address: str = Field(min_length=1, max_length=512)


class QuietHoursIn(Strict):
    """Local (Europe/Warsaw) times; a window may run over midnight (22:00-07:00)."""

    start: clock
    end: clock


class SubscribeIn(Strict):
    contacts: list[ContactIn] = Field(min_length=1, max_length=3)
    topics: list[Slug] = Field(min_length=1, max_length=50)
    # District slugs, or ["*"] for the whole city.
    districts: list[Slug] = Field(min_length=1, max_length=50)
    # The channels wanted; default: every channel of `contacts`.
    channels: list[Channel] | None = Field(default=None, min_length=1)
    language: Language = Language.PL
    quiet_hours: QuietHoursIn | None = None


class AddressIn(Strict):
    channel: Channel
    address: str = Field(min_length=1, max_length=512)


class VerifyIn(AddressIn):
    code: str = Field(min_length=1, max_length=16)


class SubscriptionsIn(Strict):
    topics: list[Slug] = Field(min_length=1, max_length=50)
    districts: list[Slug] = Field(min_length=1, max_length=50)


class PreferencesIn(Strict):
    """Only the fields given change; `quiet_hours: null` removes quiet hours."""

    language: Language | None = None
    channels: list[Channel] | None = Field(default=None, min_length=1)
    quiet_hours: QuietHoursIn | None = None


class ContactView(BaseModel):
    id: int
    channel: Channel
    # Masked: a manage link may be forwarded, the address need not travel with it.
    address: str
    wanted: bool
    verified: bool
    unsubscribed: bool
    disabled: bool


class SubscriptionView(BaseModel):
    topic: str
    district: str


class ManageView(BaseModel):
    language: Language
    quiet_hours: QuietHoursIn | None
    contact_points: list[ContactView]
    subscriptions: list[SubscriptionView]
