"""What a worker process keeps between tasks: the database, an event loop of its own for
the channels (their connection pools live in it), the senders, the rate-limit buckets and
the rendered variants. Built lazily in each process (after the fork) and reused."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from functools import cached_property
from typing import Any, TypeVar

import redis
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.db.engine import make_engine, make_sessionmaker
from broadcaster.dispatch.profiles import PROFILES
from broadcaster.dispatch.rendering import Variants
from broadcaster.dispatch.senders import build_sender
from broadcaster.ratelimit import Bucket, LocalBucket, RedisBucket
from broadcaster.settings import Settings, get_settings
from channels.interfaces import Channel, ChannelSender

T = TypeVar("T")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.variants = Variants()
        self.senders: dict[Channel, ChannelSender] = {}
        self.buckets: dict[Channel, Bucket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        engine = (
            make_engine(self.settings.database_url, pool_size=2, max_overflow=2)
            if not self.settings.is_sqlite
            else make_engine(self.settings.database_url)
        )
        return make_sessionmaker(engine, secret_key=self.settings.secret_key)

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="channels", daemon=True).start()
                self._loop = loop
            return self._loop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the channels' loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop()).result()

    def sender(self, channel: Channel) -> ChannelSender:
        if channel not in self.senders:

            async def build() -> ChannelSender:
                return build_sender(channel, self.settings)

            self.senders[channel] = self.run(build())
        return self.senders[channel]

    def bucket(self, channel: Channel) -> Bucket:
        if channel not in self.buckets:
            rate = PROFILES[channel].rate(self.settings)
            if self.settings.broker_is_redis:
                client = redis.Redis.from_url(self.settings.redis_url)
                self.buckets[channel] = RedisBucket(
                    client, channel.value, rate, burst=max(rate, 500)
                )
            else:
                self.buckets[channel] = LocalBucket(rate, burst=max(rate, 500))
        return self.buckets[channel]

    def queued(self, queue: str) -> int:
        """Messages waiting in a queue of a Redis broker (all its priority levels); 0 when
        the broker cannot tell (the embedded one)."""
        if not self.settings.broker_is_redis:
            return 0
        client = redis.Redis.from_url(self.settings.broker_url)
        try:
            # kombu keeps one list per priority level: "<queue>" for 0, "<queue>:<n>" after.
            with client.pipeline(transaction=False) as pipe:
                for key in [queue, *(f"{queue}:{n}" for n in range(1, 10))]:
                    pipe.llen(key)
                return sum(pipe.execute())
        finally:
            client.close()

    def close(self) -> None:
        sessions = self.__dict__.pop("sessions", None)
        if sessions is not None:
            sessions.kw["bind"].dispose()
        if self._loop is None:
            return
        for sender in self.senders.values():
            self.run(sender.aclose())
        self.senders.clear()
        self._loop.call_soon_threadsafe(self._loop.stop)


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime(get_settings())
    return _runtime
