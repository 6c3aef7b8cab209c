"""The per-client cap on runs in flight: in one process, and shared through a real Redis
by several web processes."""

from __future__ import annotations

import socket
import time

import redis

from server.runs import InFlight, SharedInFlight, runs_in_flight


def test_one_process_counts_each_client_up_to_the_cap() -> None:
    cap = InFlight(2)
    assert cap.take("a", "r1") and cap.take("a", "r2") and not cap.take("a", "r3")
    assert cap.take("b", "r4")  # another client has its own count
    cap.release("a", "r1")
    assert cap.count("a") == 1 and cap.take("a", "r5")
    cap.release("a", "r2"), cap.release("a", "r5")
    assert cap.count("a") == 0


def test_releases_are_idempotent() -> None:
    """A run released twice, or one refused (never counted) and released, frees no other
    run's place."""
    cap = InFlight(2)
    assert cap.take("a", "r1") and cap.take("a", "r2")
    cap.release("a", "r1"), cap.release("a", "r1"), cap.release("a", "never")
    assert cap.count("a") == 1 and cap.take("a", "r3") and not cap.take("a", "r4")


def test_two_web_processes_share_one_count_through_redis(redis_url: str) -> None:
    """Two web processes (two counters on one Redis): the cap holds across them, and a
    run released by either frees a place for both; releases are idempotent."""
    first = runs_in_flight(2, redis_url, ttl_s=60)
    second = runs_in_flight(2, redis_url, ttl_s=60)
    assert isinstance(first, SharedInFlight)
    assert first.take("a", "r1") and second.take("a", "r2")
    assert not first.take("a", "r3") and not second.take("a", "r3")
    assert second.take("b", "r4")
    first.release("a", "r1")
    first.release("a", "r1")  # twice: nothing more is freed
    second.release("a", "r3")  # refused, never counted: nothing is freed
    assert second.count("a") == 1 and second.take("a", "r5") and not first.take("a", "r6")
    second.release("a", "r2"), first.release("a", "r5")
    assert first.count("a") == 0
    assert not redis.Redis.from_url(redis_url).zcard(SharedInFlight.key("a"))


def test_a_run_a_killed_process_never_released_lapses(redis_url: str) -> None:
    """Its place comes back after the TTL even while the client keeps starting runs."""
    cap = runs_in_flight(2, redis_url, ttl_s=2)
    assert cap.take("a", "lost")  # the process that took it dies: nobody releases it
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:  # the client keeps running one run at a time
        assert cap.take("a", "r")
        cap.release("a", "r")
        time.sleep(0.3)
    assert cap.take("a", "r1") and cap.take("a", "r2")  # both places are free again


def test_without_redis_the_count_is_this_process_s_own() -> None:
    assert isinstance(runs_in_flight(2, None, ttl_s=60), InFlight)


def test_runs_go_through_uncounted_when_redis_is_down() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    cap = runs_in_flight(1, url, ttl_s=60)
    assert isinstance(cap, SharedInFlight)
    assert cap.take("a", "r1") and cap.take("a", "r2")
    cap.release("a", "r1")
    assert cap.error is not None and "Connection" in cap.error


def test_a_hanging_redis_is_left_alone_for_a_while() -> None:
    with socket.socket() as server:  # takes connections, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        cap = runs_in_flight(1, f"redis://127.0.0.1:{server.getsockname()[1]}/0", ttl_s=60)
        assert cap.shared and cap.take("a", "r0")  # after the socket timeout
        started = time.monotonic()
        assert all(cap.take("a", f"r{i}") for i in range(1, 10))
        assert time.monotonic() - started < 0.5
