"""Rate limits per channel, shared by every worker: a token bucket in Redis.

Celery's own `rate_limit` is per worker process; a provider's limit is per account, so
the bucket lives in Redis and one Lua script takes tokens atomically. A provider's
Retry-After pauses the whole channel (every worker) until then. Without Redis (the
embedded default) the bucket is local to the process.

The same buckets, one per key, limit what residents can make us send (codes and links):
per contact point, per client IP and for the whole service.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from typing import Protocol

import redis

# KEYS[1] bucket hash, KEYS[2] pause key; ARGV: rate/s, burst, wanted, now (s).
# Returns the seconds to wait before the tokens are there (0: taken now).
_TAKE = """
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
local now = tonumber(ARGV[4])
if paused > now then return tostring(paused - now) end
local rate, burst, wanted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or ARGV[2])
local stamp = tonumber(redis.call('HGET', KEYS[1], 'stamp') or ARGV[4])
tokens = math.min(burst, tokens + (now - stamp) * rate)
if tokens >= wanted then
  redis.call('HSET', KEYS[1], 'tokens', tokens - wanted, 'stamp', now)
  redis.call('EXPIRE', KEYS[1], 3600)
  return '0'
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'stamp', now)
redis.call('EXPIRE', KEYS[1], 3600)
return tostring((wanted - tokens) / rate)
"""


class Bucket(Protocol):
    def try_take(self, wanted: int) -> float: ...

    def pause(self, seconds: float) -> None: ...


class RedisBucket:
    def __init__(self, client: redis.Redis, channel: str, rate: float, burst: float) -> None:
        self.client = client
        self.keys = [f"wsp:rate:{channel}", f"wsp:pause:{channel}"]
        self.rate = rate
        self.burst = burst
        self.script = client.register_script(_TAKE)

    def try_take(self, wanted: int) -> float:
        # More than the burst at once could never fit: take it in the burst's time.
        wanted = min(wanted, int(self.burst))
        return float(self.script(keys=self.keys, args=[self.rate, self.burst, wanted, time.time()]))

    def pause(self, seconds: float) -> None:
        until = time.time() + seconds
        current = float(self.client.get(self.keys[1]) or 0)
        if until > current:
            self.client.set(self.keys[1], until, ex=max(1, int(seconds) + 1))


class LocalBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()
        self.paused_until = 0.0
        self.lock = threading.Lock()

    def try_take(self, wanted: int) -> float:
        wanted = min(wanted, int(self.burst))
        with self.lock:
            now = time.monotonic()
            if self.paused_until > now:
                return self.paused_until - now
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= wanted:
                self.tokens -= wanted
                return 0.0
            return (wanted - self.tokens) / self.rate

    def pause(self, seconds: float) -> None:
        with self.lock:
            self.paused_until = max(self.paused_until, time.monotonic() + seconds)


async def take(bucket: Bucket, wanted: int, *, deadline: float = 30.0) -> bool:
    """Wait for `wanted` tokens; False if that would take longer than `deadline` seconds."""
    waited = 0.0
    while True:
        wait = bucket.try_take(wanted)
        if wait <= 0:
            return True
        if waited + wait > deadline:
            return False
        await asyncio.sleep(wait)
        waited += wait


class KeyedLimiter(Protocol):
    def hit(self, key: str, per_hour: int) -> float:
        """Count one event for `key`; 0 when allowed, else the seconds until it would be."""
        ...


class RedisKeyedLimiter:
    """Per-key hourly limits shared by every API process: a token bucket per key (burst
    `per_hour`, refilled evenly over the hour) in Redis, taken by the same Lua script."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.script = client.register_script(_TAKE)

    def hit(self, key: str, per_hour: int) -> float:
        keys = [f"{self.prefix}:{key}", f"{self.prefix}:{key}:pause"]
        args = [per_hour / 3600, per_hour, 1, time.time()]
        return float(self.script(keys=keys, args=args))


class LocalKeyedLimiter:
    """The same limits within one process (the embedded default, with no Redis).

    Buckets are kept for at most `max_keys` keys, the least recently used forgotten
    first: memory stays bounded whatever number of addresses a client tries.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self.buckets: OrderedDict[str, LocalBucket] = OrderedDict()
        self.lock = threading.Lock()

    def hit(self, key: str, per_hour: int) -> float:
        with self.lock:
            bucket = self.buckets.pop(key, None)
            if bucket is None or bucket.burst != per_hour:
                bucket = LocalBucket(per_hour / 3600, burst=per_hour)
            self.buckets[key] = bucket
            while len(self.buckets) > self.max_keys:
                self.buckets.popitem(last=False)
        return bucket.try_take(1)
