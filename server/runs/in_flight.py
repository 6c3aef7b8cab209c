"""A cap on the runs one client has going at once: in this web process, or across every
web process through Redis (ASKTA_REDIS_URL)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

import redis

from server.runs.redis_keys import PREFIX

# Redis: KEYS[1] the client's counter. ARGV: cap, ttl. 1 when counted, 0 at the cap.
TAKE = """
local n = redis.call('INCR', KEYS[1])
if n > tonumber(ARGV[1]) then
    redis.call('DECR', KEYS[1])
    return 0
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""
# KEYS[1] the client's counter: one fewer, and gone at zero.
RELEASE = """
local n = redis.call('DECR', KEYS[1])
if n <= 0 then redis.call('DEL', KEYS[1]) end
return n
"""
TIMEOUT_S = 2.0

log = logging.getLogger("askta")


class RunsInFlight(Protocol):
    """Counts each client's queued or running runs (ASKTA_RUNS_IN_FLIGHT_PER_CLIENT):
    one student cannot fill the queue with spinning code."""

    cap: int
    shared: bool  # counted over the network: call it off the event loop

    def take(self, client: str) -> bool:
        """Count one more run for `client`; False (nothing counted) when at the cap."""

    def release(self, client: str) -> None:
        """One run of `client` has ended."""

    def count(self, client: str) -> int:
        """How many runs `client` has going."""


class InFlight:
    """Runs each client has going in this web process."""

    shared = False

    def __init__(self, cap: int):
        self.cap = cap
        self._runs: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> bool:
        with self._lock:
            if self._runs.get(client, 0) >= self.cap:
                return False
            self._runs[client] = self._runs.get(client, 0) + 1
            return True

    def release(self, client: str) -> None:
        with self._lock:
            left = self._runs.get(client, 0) - 1
            if left > 0:
                self._runs[client] = left
            else:
                self._runs.pop(client, None)

    def count(self, client: str) -> int:
        with self._lock:
            return self._runs.get(client, 0)


class SharedInFlight:
    """Runs each client has going in every web process, counted in Redis. A counter
    expires `ttl_s` after its last run started, so runs a killed process never released
    stop counting once no run could still be going.

    When Redis cannot be reached a run is let through (and the error logged once), as
    the rate limits do: the cap protects the queue, and losing Redis must not stop demos.
    After a failure Redis is left alone for RETRY_S.
    """

    shared = True
    RETRY_S = 5.0

    def __init__(self, url: str, cap: int, ttl_s: int):
        self.cap, self.ttl_s = cap, ttl_s
        self.error: str | None = None
        self._down_until = 0.0  # time.monotonic() before which Redis is not tried
        self._redis: Any = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S,
                                                socket_connect_timeout=TIMEOUT_S)
        self._take = self._redis.register_script(TAKE)
        self._release = self._redis.register_script(RELEASE)

    @staticmethod
    def key(client: str) -> str:
        return f"{PREFIX}in-flight:{client}"

    def take(self, client: str) -> bool:
        if time.monotonic() < self._down_until:
            return True
        try:
            taken = bool(self._take(keys=[self.key(client)], args=[self.cap, self.ttl_s]))
        except redis.RedisError as e:
            self._failed(e)
            return True
        self.error = None
        return taken

    def release(self, client: str) -> None:
        if time.monotonic() < self._down_until:
            return
        try:
            self._release(keys=[self.key(client)])
        except redis.RedisError as e:
            self._failed(e)

    def _failed(self, e: Exception) -> None:
        if self.error is None:
            log.error("runs in flight: cannot reach Redis (%s: %s); runs are let through "
                      "uncounted until it answers", type(e).__name__, e)
        self.error = f"{type(e).__name__}: {e}"
        self._down_until = time.monotonic() + self.RETRY_S

    def count(self, client: str) -> int:
        return int(self._redis.get(self.key(client)) or 0)


def runs_in_flight(cap: int, redis_url: str | None, ttl_s: int) -> RunsInFlight:
    """Shared through Redis when there is one, else this process's own count."""
    if redis_url:
        return SharedInFlight(redis_url, cap, ttl_s)
    return InFlight(cap)
