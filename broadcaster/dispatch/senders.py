"""The channel senders, built from the settings; a bad setting stops start-up by name.

The only place that knows which settings feed which channel. Built once per worker
process, inside its event loop (the push and e-mail channels keep connections open).
"""

from __future__ import annotations

from collections.abc import Callable

from broadcaster.settings import PREFIX, Settings, SettingsError
from channels.email import SmtpConfig, SmtpEmailChannel
from channels.interfaces import Channel, ChannelConfigError, ChannelSender
from channels.push import FcmConfig, FirebasePushChannel
from channels.sms import SmsApiChannel, SmsApiConfig


def _sms(settings: Settings) -> ChannelSender:
    return SmsApiChannel(
        SmsApiConfig(
            token=settings.smsapi_token,
            base_url=settings.smsapi_url,
            sender=settings.smsapi_sender,
            max_parts=settings.sms_max_parts,
            notify_url=settings.smsapi_report_url,
        )
    )


def _push(settings: Settings) -> ChannelSender:
    credentials = settings.fcm_credentials_file
    return FirebasePushChannel(
        FcmConfig(
            project_id=settings.fcm_project_id,
            credentials_file=str(credentials) if credentials else None,
            endpoint=settings.fcm_endpoint or None,
            transport=settings.fcm_transport.value,
            ca_file=str(settings.fcm_ca_file) if settings.fcm_ca_file else None,
        )
    )


def _email(settings: Settings) -> ChannelSender:
    return SmtpEmailChannel(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            security=settings.smtp_security.value,
            username=settings.smtp_username,
            password=settings.smtp_password,
            pool_size=settings.smtp_pool_size,
            ca_file=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
        )
    )


# The registry: a channel's name to what builds its sender from the settings.
BUILDERS: dict[Channel, Callable[[Settings], ChannelSender]] = {
    Channel.SMS: _sms,
    Channel.PUSH: _push,
    Channel.EMAIL: _email,
}


def build_sender(channel: Channel, settings: Settings) -> ChannelSender:
    """The sender for `channel`; SettingsError names the variable when it cannot start."""
    try:
        return BUILDERS[channel](settings)
    except ChannelConfigError as error:
        raise SettingsError(f"{PREFIX}{error.setting.upper()}", error.problem) from None


def build_senders(
    settings: Settings, channels: set[Channel] | None = None
) -> dict[Channel, ChannelSender]:
    """Senders for `channels` (default: all); checks every one before returning any."""
    return {channel: build_sender(channel, settings) for channel in (channels or set(Channel))}
