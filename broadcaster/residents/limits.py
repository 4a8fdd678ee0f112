"""Limits on what residents can make us send: per contact point, per client network and
for the whole service, counted before anything is written. They are charged whether or
not an address is registered, so a refusal tells a stranger nothing either."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Sequence

import redis

from broadcaster.errors import RateLimited
from broadcaster.ratelimit import KeyedLimiter, LocalKeyedLimiter, RedisKeyedLimiter
from broadcaster.settings import Settings
from channels import Channel


class Limits:
    """Shared through Redis when the deployment runs on Redis (the broker is Redis),
    otherwise kept in this process (the embedded default)."""

    def __init__(self, settings: Settings, limiter: KeyedLimiter) -> None:
        self.settings = settings
        self.limiter = limiter

    @classmethod
    def for_settings(cls, settings: Settings) -> Limits:
        if settings.broker_is_redis:
            client = redis.Redis.from_url(settings.redis_url)
            return cls(settings, RedisKeyedLimiter(client, settings.ratelimit_key_prefix))
        return cls(settings, LocalKeyedLimiter())

    def _contact_key(self, channel: Channel, address: str) -> str:
        # One mailbox under many names (jan+1@, jan+2@, ...) is one contact to limit.
        if channel is Channel.EMAIL:
            local, _, domain = address.rpartition("@")
            address = f"{local.split('+', 1)[0]}@{domain}"
        # Keyed, so that the keys in Redis do not give the addresses away.
        digest = hmac.new(
            self.settings.secret_key.encode(), f"{channel}:{address}".encode(), hashlib.sha256
        )
        return f"contact:{digest.hexdigest()[:32]}"

    @staticmethod
    def _network_key(ip: str) -> str:
        # An IPv6 client holds a whole /64 (and hops between its addresses): limit that.
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return f"ip:{ip}"
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return f"ip:{address.ipv4_mapped}"
            return f"ip:{ipaddress.ip_network(f'{address}/64', strict=False)}"
        return f"ip:{address}"

    def charge(self, *, ip: str, contacts: Sequence[tuple[Channel, str]]) -> None:
        """Count one message to each contact; RateLimited names the first limit reached."""
        settings = self.settings
        for index, (channel, address) in enumerate(contacts):
            checks = [
                (
                    self._contact_key(channel, address),
                    settings.verification_codes_per_hour,
                    f"too many messages were sent to contacts[{index}] (or this address); "
                    "try again later",
                ),
                (
                    self._network_key(ip),
                    settings.verification_messages_per_ip_per_hour,
                    "too many requests from your network; try again later",
                ),
                (
                    "global",
                    settings.verification_messages_per_hour,
                    "the service is sending too many codes right now; try again later",
                ),
            ]
            for key, per_hour, message in checks:
                wait = self.limiter.hit(key, per_hour)
                if wait > 0:
                    raise RateLimited(message, wait)


def client_ip(*, peer: str, forwarded_for: Sequence[str], hops: int) -> str:
    """The client's address, which the per-network limit counts: the peer's, unless
    `hops` proxies we run (`WSP_FORWARDED_FOR_HOPS`) sit in front, each appending what
    it saw to X-Forwarded-For (`forwarded_for`: every such header, as received);
    anything further left was written by the client and is not believed."""
    if hops == 0:
        return peer
    chain = [part.strip() for header in forwarded_for for part in header.split(",") if part.strip()]
    # Fewer entries than proxies: the request did not come through all of them, and
    # whatever it carries is the client's own writing.
    return chain[-hops] if len(chain) >= hops else peer
