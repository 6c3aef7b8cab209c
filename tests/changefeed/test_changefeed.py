"""The KB change feed: what one web process writes to kb/ reaches another's entries and
index within a second, over a real Redis (and over PostgreSQL LISTEN/NOTIFY where
ASKTA_TEST_POSTGRES_URL is set, as in CI). Two Services here share one kb/, data dir and
database, as two web processes of one machine do; tests/web/test_web_processes.py runs
two real `askta serve` processes."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.embedders import HashingEmbedder
from server.changefeed import ChangeFeed, KbChange
from server.changefeed.postgres import PostgresChangeFeed
from server.changefeed.redis import RedisChangeFeed
from server.config import Settings
from server.services import Services
from server.web.app import create_app
from tests.postgres import POSTGRES_URL, fresh_postgres_url

ENTRY = "why-nonlinearities"
NOVEL = "which plimsoll fits a zanzibar ostrich carburetor"
BACKENDS = ["redis"] + (["postgresql"] if POSTGRES_URL else [])


def wait_for(condition: Callable[[], bool], timeout_s: float = 1.0) -> float:
    """Seconds until `condition()` held; fails past `timeout_s`."""
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout_s, f"not within {timeout_s} s"
        time.sleep(0.005)
    return time.monotonic() - began


# --- the feeds themselves ----------------------------------------------------------------
@pytest.fixture(params=BACKENDS)
def feeds(request: pytest.FixtureRequest, redis_url: str) -> Iterator[list[ChangeFeed]]:
    """Two feeds on one channel of a real backend."""
    if request.param == "redis":
        made: list[ChangeFeed] = [RedisChangeFeed(redis_url), RedisChangeFeed(redis_url)]
        yield made
    else:
        with fresh_postgres_url() as url:
            made = [PostgresChangeFeed(url), PostgresChangeFeed(url)]
            yield made
    for feed in made:
        feed.close()


def listening(feeds: list[ChangeFeed]) -> list[list[KbChange]]:
    """Start every feed, collecting what each applies; wait until all listen."""
    got: list[list[KbChange]] = [[] for _ in feeds]
    for feed, bucket in zip(feeds, got, strict=True):
        feed.start(bucket.append, lambda: None)
    wait_for(lambda: all(f.connected for f in feeds), 10)
    return got


def test_a_change_reaches_the_other_feed_and_not_its_own(feeds: list[ChangeFeed]) -> None:
    got = listening(feeds)
    feeds[0].publish(ENTRY)
    elapsed = wait_for(lambda: len(got[1]) == 1)
    assert elapsed < 1.0
    assert got[1][0].entry_id == ENTRY and got[1][0].origin == feeds[0].origin
    time.sleep(0.2)
    assert got[0] == []  # a process does not re-apply its own write
    assert feeds[0].state()["published"] == 1 and feeds[1].state()["received"] == 1
    assert feeds[1].state()["last_lag_ms"] < 1000


def test_a_message_that_is_not_a_change_is_ignored(feeds: list[ChangeFeed]) -> None:
    got = listening(feeds)
    feeds[0]._received(b"not json")
    feeds[0]._received('{"entry": "x"}')
    assert got[0] == [] and feeds[0].received == 0


def test_a_feed_that_cannot_connect_keeps_the_change_and_says_why() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    feed = RedisChangeFeed(f"redis://127.0.0.1:{port}/0")
    try:
        feed.start(lambda change: None, lambda: None)
        feed.publish(ENTRY)  # does not raise: it waits in the outbox
        wait_for(lambda: feed.error is not None, 5)
        state = feed.state()
        assert state["connected"] is False and state["waiting"] == 1
        assert "Connection" in state["error"]
    finally:
        feed.close()


# --- two processes' services on one kb/ ---------------------------------------------------
@pytest.fixture
def shared_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url})


@pytest.fixture
def pair(shared_settings: Settings) -> Iterator[tuple[Services, Services]]:
    """Two Services over the same kb/, data dir and database, each with its own feed."""
    a = Services.start(shared_settings, embedder=HashingEmbedder())
    b = Services.start(shared_settings, embedder=HashingEmbedder())
    try:
        wait_for(lambda: a.change_feed.connected and b.change_feed.connected, 10)
        yield a, b
    finally:
        a.close()
        b.close()


def answers(services: Services, question: str, entry_id: str) -> bool:
    result = services.searcher.search(question)
    return result.answered and result.hits[0].entry_id == entry_id


def test_a_link_through_one_process_is_answered_by_the_other_within_a_second(
        pair: tuple[Services, Services]) -> None:
    a, b = pair
    assert not answers(b, NOVEL, ENTRY)
    review_id = a.store.open_review_item(None, NOVEL, reason="unanswered", suggestions=[])
    a.review_queue.link(review_id, ENTRY, by="tara", group=False)
    assert answers(a, NOVEL, ENTRY)
    elapsed = wait_for(lambda: answers(b, NOVEL, ENTRY))
    assert elapsed < 1.0
    assert NOVEL in b.kb.get(ENTRY).alternate_questions
    wait_for(lambda: b.change_feed.received == 1)
    time.sleep(0.1)
    assert a.change_feed.received == 0 and b.change_feed.received == 1


def test_a_save_and_a_delete_reach_the_other_process(pair: tuple[Services, Services]) -> None:
    a, b = pair
    entry = a.kb.get(ENTRY)
    fields = {**entry.model_dump(mode="json"), "answer": "Rewritten by the instructor.\n"}
    a.editor.save(fields, by="ian", entry_id=ENTRY, if_match="*")
    wait_for(lambda: b.kb.get(ENTRY).answer == "Rewritten by the instructor.\n")
    a.editor.delete(ENTRY, by="ian", if_match="*")
    wait_for(lambda: ENTRY not in b.kb.entries and ENTRY not in b.searcher.index.entry_ids)
    assert all(h.entry_id != ENTRY for h in b.searcher.search(entry.question).hits)


def test_a_process_that_missed_changes_catches_up_when_it_listens_again(
        pair: tuple[Services, Services]) -> None:
    a, b = pair
    b.follower.close()  # b stops listening, as if Redis were gone for a while
    review_id = a.store.open_review_item(None, NOVEL, reason="unanswered", suggestions=[])
    a.review_queue.link(review_id, ENTRY, by="tara", group=False)
    time.sleep(0.3)
    assert not answers(b, NOVEL, ENTRY)
    b.follower.resync()  # what the feed does on every (re)connection
    assert answers(b, NOVEL, ENTRY)


def test_health_and_readiness_show_the_change_feed(pair: tuple[Services, Services],
                                                   shared_settings: Settings) -> None:
    a, _ = pair
    with TestClient(create_app(shared_settings, services=a)) as client:
        feed = client.get("/healthz").json()["change_feed"]
        assert feed["backend"] == "redis" and feed["connected"] is True
        check = client.get("/readyz").json()["checks"]["change_feed"]
        assert check["ok"] is True and check["required"] is False


def test_readiness_reports_a_feed_that_cannot_connect_and_stays_ready(
        settings: Settings, services: Services) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    services.change_feed = RedisChangeFeed(f"redis://127.0.0.1:{port}/0")
    services.follower.feed = services.change_feed
    services.follower.start()
    wait_for(lambda: services.change_feed.error is not None, 5)
    with TestClient(create_app(settings, services=services)) as client:
        r = client.get("/readyz")
        assert r.status_code == 200
        check = r.json()["checks"]["change_feed"]
        assert check["ok"] is False and "reconnects" in check["reason"]


def test_one_process_has_no_feed(services: Services, tmp_path: Path) -> None:
    assert services.change_feed.backend == "off"
    assert services.change_feed.state()["connected"] is False
