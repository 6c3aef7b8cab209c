"""The per-client cap on runs in flight: in one process, and shared through a real Redis
by several web processes."""

from __future__ import annotations

import socket
import time

import redis

from server.runs import InFlight, SharedInFlight, runs_in_flight


def test_one_process_counts_each_client_up_to_the_cap() -> None:
    cap = InFlight(2)
    assert cap.take("a") and cap.take("a") and not cap.take("a")
    assert cap.take("b")  # another client has its own count
    cap.release("a")
    assert cap.count("a") == 1 and cap.take("a")
    cap.release("a"), cap.release("a")
    assert cap.count("a") == 0


def test_two_web_processes_share_one_count_through_redis(redis_url: str) -> None:
    """Two web processes (two counters on one Redis): the cap holds across them, and a
    run released by either frees a place for both."""
    first = runs_in_flight(2, redis_url, ttl_s=60)
    second = runs_in_flight(2, redis_url, ttl_s=60)
    assert isinstance(first, SharedInFlight)
    assert first.take("a") and second.take("a")
    assert not first.take("a") and not second.take("a")
    assert second.take("b")
    first.release("a")
    assert second.count("a") == 1 and second.take("a")
    for _ in range(2):
        second.release("a")
    assert first.count("a") == 0
    assert not redis.Redis.from_url(redis_url).exists(SharedInFlight.key("a"))
    first.release("a")  # one release too many does not leave a negative count
    assert first.count("a") == 0 and first.take("a")


def test_a_count_a_killed_process_never_released_lapses(redis_url: str) -> None:
    cap = runs_in_flight(1, redis_url, ttl_s=1)
    assert cap.take("a") and not cap.take("a")
    time.sleep(2.1)  # the process that took it died: nobody releases it
    assert cap.take("a")


def test_without_redis_the_count_is_this_process_s_own() -> None:
    assert isinstance(runs_in_flight(2, None, ttl_s=60), InFlight)


def test_runs_go_through_uncounted_when_redis_is_down() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    cap = runs_in_flight(1, url, ttl_s=60)
    assert isinstance(cap, SharedInFlight)
    assert cap.take("a") and cap.take("a")
    cap.release("a")
    assert cap.error is not None and "Connection" in cap.error


def test_a_hanging_redis_is_left_alone_for_a_while() -> None:
    with socket.socket() as server:  # takes connections, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        cap = runs_in_flight(1, f"redis://127.0.0.1:{server.getsockname()[1]}/0", ttl_s=60)
        assert cap.shared and cap.take("a")  # after the socket timeout
        started = time.monotonic()
        assert all(cap.take("a") for _ in range(10))
        cap.release("a")
        assert time.monotonic() - started < 0.5
