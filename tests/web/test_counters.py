"""Rate limits and login attempts shared through Redis (server/web/counters.py): two
apps, as two web processes, count one client together; in memory without Redis; and
what happens when Redis cannot be reached."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from limits.storage import MemoryStorage, RedisStorage

from server.accounts import Accounts
from server.config import Settings
from server.services import Services
from server.web.app import create_app
from server.web.counters import counter_storage
from server.web.ratelimit import RateLimits, SharedLimiter, SlidingWindowLimiter
from server.web.throttle import LoginThrottle, ThrottleUnavailable


def unreachable_redis() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{s.getsockname()[1]}/0"


def test_counters_live_in_memory_without_redis_and_in_redis_with_it(
        settings: Settings, redis_url: str) -> None:
    assert isinstance(counter_storage(settings), MemoryStorage)
    assert isinstance(RateLimits.from_settings(settings.model_copy(
        update={"chat_rate_limit": "3/minute"})).chat, SlidingWindowLimiter)
    shared = settings.model_copy(update={"redis_url": redis_url, "chat_rate_limit": "3/minute"})
    assert isinstance(counter_storage(shared), RedisStorage)
    limits = RateLimits.from_settings(shared)
    assert limits.shared and isinstance(limits.chat, SharedLimiter)


def test_two_processes_count_one_client_together(settings: Settings, redis_url: str) -> None:
    shared = settings.model_copy(update={"redis_url": redis_url, "chat_rate_limit": "3/minute"})
    a, b = RateLimits.from_settings(shared), RateLimits.from_settings(shared)
    assert a.chat is not None and b.chat is not None
    assert [a.chat.hit("chat:1.2.3.4") for _ in range(2)] == [None, None]
    assert b.chat.hit("chat:1.2.3.4") is None
    wait = b.chat.hit("chat:1.2.3.4")
    assert wait is not None and 0 < wait <= 60
    assert a.chat.hit("chat:1.2.3.4") is not None
    assert a.chat.hit("chat:5.6.7.8") is None  # another client has its own count


def test_rate_limits_let_requests_through_when_redis_is_down(settings: Settings) -> None:
    down = settings.model_copy(update={"redis_url": unreachable_redis(),
                                       "chat_rate_limit": "1/minute"})
    limiter = RateLimits.from_settings(down).chat
    assert isinstance(limiter, SharedLimiter)
    assert [limiter.hit("chat:x") for _ in range(3)] == [None, None, None]
    assert limiter.error is not None and "Connection" in limiter.error


def test_login_attempts_are_counted_together(settings: Settings, redis_url: str) -> None:
    shared = settings.model_copy(update={"redis_url": redis_url, "login_rate_limit": "2/minute",
                                         "login_ip_rate_limit": "off"})
    a, b = LoginThrottle.from_settings(shared), LoginThrottle.from_settings(shared)
    assert a.attempt("tara", "1.2.3.4") is None
    assert b.attempt("tara", "5.6.7.8") is None
    wait = a.attempt("TARA ", "1.2.3.4")
    assert wait is not None and 1 <= wait <= 60
    b.succeeded("tara")  # a login on b forgets the account's count everywhere
    assert a.attempt("tara", "1.2.3.4") is None


def test_a_login_is_refused_not_unthrottled_when_redis_is_down(
        settings: Settings, services: Services) -> None:
    down = settings.model_copy(update={"redis_url": unreachable_redis()})
    throttle = LoginThrottle.from_settings(down)
    with pytest.raises(ThrottleUnavailable):
        throttle.attempt("tara", "1.2.3.4")
    Accounts(services.store).add("tara", "ta", "correct horse battery")
    services.login_throttle = throttle
    with TestClient(create_app(down, services=services)) as client:
        page = client.get("/login")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        r = client.post("/login", data={"name": "tara", "password": "correct horse battery",
                                        "csrf_token": token, "next": "/review"},
                        follow_redirects=False)
        assert r.status_code == 503 and "try again" in r.text
        assert "askta_session" not in client.cookies


@contextmanager
def silent_redis() -> Iterator[str]:
    """A port that takes connections and never answers: a Redis that hangs."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"


def test_a_hanging_redis_costs_one_request_its_timeout_not_every_request(
        settings: Settings) -> None:
    with silent_redis() as url:
        limiter = RateLimits.from_settings(settings.model_copy(
            update={"redis_url": url, "chat_rate_limit": "1/minute"})).chat
        assert isinstance(limiter, SharedLimiter)
        started = time.monotonic()
        assert limiter.hit("chat:x") is None  # waits for the socket timeout, then lets it by
        assert time.monotonic() - started >= 1.0 and limiter.error is not None
        started = time.monotonic()
        assert [limiter.hit("chat:x") for _ in range(20)] == [None] * 20
        assert time.monotonic() - started < 0.5  # not tried again for RETRY_S


def test_shared_counters_are_asked_off_the_event_loop(settings: Settings,
                                                      services: Services) -> None:
    """While a chat request waits on a Redis that hangs, the server answers others."""
    with silent_redis() as url:
        hanging = settings.model_copy(update={"redis_url": url, "chat_rate_limit": "5/minute"})
        services.rate_limits = RateLimits.from_settings(hanging)
        with TestClient(create_app(hanging, services=services)) as client:
            chat: list[int] = []  # one event loop serves both clients' requests
            asking = threading.Thread(target=lambda: chat.append(
                client.post("/api/chat", json={"message": "relu?"}).status_code))
            asking.start()
            time.sleep(0.3)  # the chat request is waiting on Redis
            started = time.monotonic()
            health = client.get("/healthz").status_code
            took = time.monotonic() - started
            asking.join(10)
        assert health == 200 and chat == [200]  # the limit fails open
        assert took < 1.0, f"/healthz waited {took:.2f} s behind the chat's Redis call"


def test_login_attempts_counted_from_many_threads_at_once_stop_at_the_limit(
        settings: Settings) -> None:
    """Attempts are counted from worker threads: a burst released together must not
    slip past the per-account limit between its test and its hit."""
    throttle = LoginThrottle.from_settings(settings.model_copy(
        update={"login_rate_limit": "5/minute", "login_ip_rate_limit": "off"}))
    start = threading.Barrier(40)
    allowed: list[bool] = []

    def guess() -> None:
        start.wait()
        allowed.append(throttle.attempt("tara", "1.2.3.4") is None)

    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=guess) for _ in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        sys.setswitchinterval(before)
    assert len(allowed) == 40 and allowed.count(True) == 5
