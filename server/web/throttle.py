"""Password guessing: login attempts throttled per account and per address before any
password is hashed, and a cap on how many argon2 hashes run at once.

The limits are moving windows from the `limits` package, written in its notation and
stacked into a ladder (`ASKTA_LOGIN_RATE_LIMIT`, default "5/minute;10/10 minutes;
20/hour;50/day"): each rung allows about twice the attempts of the one before over a
window many times longer, so a guesser's wait grows exponentially (a minute, then
minutes, an hour, a day) while a TA who mistypes twice waits for nothing. Refused
attempts are not counted, and a successful login forgets that account's attempts; an
address's attempts are never forgotten early (a guesser with one valid account must not
reset them). The counters live in a `limits` storage (server/web/counters.py): memory,
one per app, or Redis (ASKTA_REDIS_URL), shared by every web process. When Redis cannot
be reached, logins are refused with 503 (ThrottleUnavailable) rather than unthrottled.

Hashing (argon2 takes ~50 ms of several cores) runs in at most `login_hash_concurrency`
threads; a login that cannot get a slot within `login_hash_wait_s` is refused with 503,
so a burst of logins cannot take the cores the chat answers on.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage
from limits.strategies import MovingWindowRateLimiter
from starlette.concurrency import run_in_threadpool

from server.config import Settings
from server.web.counters import counter_storage

T = TypeVar("T")


def parse_limits(value: str) -> list[RateLimitItem]:
    """'5/minute;20/hour' -> the limits; 'off' -> none. ValueError when malformed."""
    value = value.strip().lower()
    return [] if value == "off" else parse_many(value)


class HashingBusy(Exception):
    """Every hashing slot stayed taken for the whole wait."""


class ThrottleUnavailable(Exception):
    """The shared attempt counters (Redis) cannot be reached: no login is checked."""


class LoginThrottle:
    """The per-account and per-address attempt limits and the hashing slots of one app."""

    def __init__(self, account_limits: list[RateLimitItem], address_limits: list[RateLimitItem],
                 hash_slots: int, hash_wait_s: float,
                 clock: Callable[[], float] = time.time, storage: Storage | None = None):
        self.account_limits, self.address_limits = account_limits, address_limits
        self.hash_slots, self.hash_wait_s, self.clock = max(1, hash_slots), hash_wait_s, clock
        self.limiter = MovingWindowRateLimiter(storage or MemoryStorage())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(self.hash_slots)
        # attempts are counted from worker threads: test-then-hit must not interleave
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, storage: Storage | None = None) -> LoginThrottle:
        return cls(parse_limits(settings.login_rate_limit),
                   parse_limits(settings.login_ip_rate_limit),
                   settings.login_hash_concurrency, settings.login_hash_wait_s,
                   storage=storage or counter_storage(settings))

    # --- attempts --------------------------------------------------------------------
    def attempt(self, account: str, address: str) -> float | None:
        """Count a login attempt; None when allowed, else the seconds until one is.

        Call it before the password is hashed. Nothing is counted for a refused attempt.
        ThrottleUnavailable when the shared counters cannot be reached.
        """
        try:
            return self._attempt(account, address)
        except Exception as e:  # Redis down: refuse, never let guesses through unthrottled
            raise ThrottleUnavailable(f"{type(e).__name__}: {e}") from e

    def _attempt(self, account: str, address: str) -> float | None:
        checks = self._checks(account, address)
        with self._lock:
            waits = [self._wait(limit, key) for limit, key in checks
                     if not self.limiter.test(limit, *key)]
            if not waits:
                # another process may have counted in between: a refused hit refuses too
                waits = [self._wait(limit, key) for limit, key in checks
                         if not self.limiter.hit(limit, *key)]
        if waits:
            return float(max(1, math.ceil(max(waits))))
        return None

    def _wait(self, limit: RateLimitItem, key: tuple[str, str]) -> float:
        return float(self.limiter.get_window_stats(limit, *key).reset_time - self.clock())

    def succeeded(self, account: str) -> None:
        """The account's owner logged in: forget its failed attempts."""
        key = _account_key(account)
        try:
            for limit in self.account_limits:
                self.limiter.clear(limit, *key)
        except Exception:  # Redis down: the count stays, the login itself succeeded
            pass

    def _checks(self, account: str, address: str) -> list[tuple[RateLimitItem, tuple[str, str]]]:
        account_key, address_key = _account_key(account), ("login-address", address)
        return ([(limit, account_key) for limit in self.account_limits]
                + [(limit, address_key) for limit in self.address_limits])

    # --- hashing ---------------------------------------------------------------------
    async def hashing(self, func: Callable[..., T], *args: object) -> T:
        """Run `func` (which hashes a password) in a thread once a hashing slot is free;
        HashingBusy when none frees up within the wait."""
        slots = self._semaphore()
        try:
            if slots.locked() and self.hash_wait_s <= 0:
                raise TimeoutError
            await asyncio.wait_for(slots.acquire(), self.hash_wait_s)
        except TimeoutError:
            raise HashingBusy from None
        try:
            return await run_in_threadpool(func, *args)
        finally:
            slots.release()

    def _semaphore(self) -> asyncio.Semaphore:
        # An asyncio semaphore belongs to one event loop: a server has one, but tests
        # start several apps over one Services in turn, each on its own loop.
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._slots = loop, asyncio.Semaphore(self.hash_slots)
        return self._slots


def _account_key(account: str) -> tuple[str, str]:
    # Hashed: a fixed-size key whatever the form sends, and no names kept in memory.
    # Casefolded: "Tara" and "tara " are one account to a guesser.
    digest = hashlib.sha256(account.strip().casefold().encode()).hexdigest()[:32]
    return ("login-account", digest)
