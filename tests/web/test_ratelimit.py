"""Per-client rate limits: the sliding window itself, and 429 with Retry-After through the API."""

from __future__ import annotations

import dataclasses

from fastapi.testclient import TestClient

from server.config import Settings
from server.services import Services
from server.web.app import create_app
from server.web.ratelimit import SlidingWindowLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_allows_n_per_window_then_says_when() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(3, 60.0, clock)
    assert [limiter.hit("a") for _ in range(3)] == [None, None, None]
    clock.now += 10
    assert limiter.hit("a") == 50.0
    clock.now += 50
    assert limiter.hit("a") is None


def test_window_slides() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(2, 60.0, clock)
    limiter.hit("a")
    clock.now += 30
    limiter.hit("a")
    clock.now += 31  # the first hit left the window, the second has not
    assert limiter.hit("a") is None
    assert limiter.hit("a") is not None


def test_clients_are_independent() -> None:
    limiter = SlidingWindowLimiter(1, 60.0, Clock())
    assert limiter.hit("a") is None
    assert limiter.hit("b") is None
    assert limiter.hit("a") is not None


def test_quiet_clients_are_forgotten() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(1, 60.0, clock)
    for i in range(100):
        limiter.hit(f"client-{i}")
    clock.now += 61
    limiter.hit("new")
    assert list(limiter._hits) == ["new"]


def _client(settings: Settings, services: Services, **limits: str) -> TestClient:
    settings = settings.model_copy(update=limits)
    return TestClient(create_app(settings, services=dataclasses.replace(services,
                                                                          settings=settings)))


def test_entries_are_never_limited(settings: Settings, services: Services) -> None:
    with _client(settings, services, chat_rate_limit="1/minute", demo_rate_limit="1/minute") as c:
        assert all(c.get("/api/entries").status_code == 200 for _ in range(5))


def test_demo_runs_are_limited_per_client(settings: Settings, services: Services) -> None:
    with _client(settings, services, demo_rate_limit="2/minute") as c:
        codes = [c.post("/api/entries/why-nonlinearities/demo/run", json={}).status_code
                 for _ in range(3)]
        assert codes[:2] == [503, 503]  # counted, then refused by the (disabled) sandbox
        assert codes[2] == 429
        r = c.get("/api/entries/why-nonlinearities/demo/stream")
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 60


def test_chat_is_limited_per_client(settings: Settings, services: Services) -> None:
    with _client(settings, services, chat_rate_limit="2/minute") as c:
        codes = [c.post("/api/chat", json={"message": "why relu"}).status_code for _ in range(3)]
        assert codes == [200, 200, 429]


def test_each_app_has_its_own_limits(settings: Settings, services: Services) -> None:
    with _client(settings, services, chat_rate_limit="1/minute") as a:
        assert a.post("/api/chat", json={"message": "why relu"}).status_code == 200
        assert a.post("/api/chat", json={"message": "why relu"}).status_code == 429
    with _client(settings, services, chat_rate_limit="1/minute") as b:
        assert b.post("/api/chat", json={"message": "why relu"}).status_code == 200


def test_off_means_unlimited(settings: Settings, services: Services) -> None:
    with _client(settings, services, chat_rate_limit="off") as c:
        assert all(c.post("/api/chat", json={"message": "why relu"}).status_code == 200
                   for _ in range(40))
