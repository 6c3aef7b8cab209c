"""Several web processes that agree: two real `askta serve` processes on one kb/, one data
dir and one database (PostgreSQL where ASKTA_TEST_POSTGRES_URL is set, as in CI; SQLite
otherwise), with a real Redis: a TA's link on A is answered by B within a second, a stale
edit on B is a 409 that loses nothing, a rate limit hit through A holds on B, and a login
on A works on B (and a logout on B ends it on A). Then `askta serve --workers 2` on
PostgreSQL without Redis: LISTEN/NOTIFY carries the change to every worker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from server.accounts import Accounts
from server.store import Store
from tests.live import copy_project
from tests.postgres import POSTGRES_URL, fresh_postgres_url
from tests.web.test_shutdown import free_port, wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
STARTUP_S = 120
PASSWORD = "several-processes-password"
ENTRY = "why-nonlinearities"
EDITED = "weight-initialization"
NOVEL = "which plimsoll fits a zanzibar ostrich carburetor"


@dataclass
class Web:
    """One `askta serve` process."""

    proc: subprocess.Popen[str]
    base: str
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base, timeout=30)

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.base}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def start(env: dict[str, str], *args: str) -> Web:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from server.cli.main import main; main()", "serve",
         "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return Web(proc, f"http://127.0.0.1:{port}")


def site_env(root: Path, database_url: str, **extra: str) -> dict[str, str]:
    kb = copy_project(root)
    env = {**os.environ, "ASKTA_KB_DIR": str(kb), "ASKTA_DATA_DIR": str(root / "data"),
           "ASKTA_MODEL": "hashing", "ASKTA_CHAT_RATE_LIMIT": "off",
           "ASKTA_DEMO_RATE_LIMIT": "off", "ASKTA_SANDBOX_ENABLED": "false",
           "PYTHONUNBUFFERED": "1", **extra}
    env.pop("ASKTA_SECRET_KEY", None)  # the processes share the key file in the data dir
    env.pop("ASKTA_REDIS_URL", None)
    if database_url:
        env["ASKTA_DATABASE_URL"] = database_url
    return env | extra


def staff(database_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """A TA's and an instructor's bearer headers, made in the servers' database."""
    store = Store(database_url)
    try:
        accounts = Accounts(store)
        accounts.add("tess", "ta", PASSWORD)
        accounts.add("ian", "instructor", PASSWORD)
        return ({"Authorization": f"Bearer {accounts.issue_token('tess')}"},
                {"Authorization": f"Bearer {accounts.issue_token('ian')}"})
    finally:
        store.close()


def within(condition: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until `condition()` held; fails past `timeout_s`."""
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout_s, f"not within {timeout_s} s"
        time.sleep(0.01)
    return time.monotonic() - began


@dataclass
class Pair:
    a: Web
    b: Web
    ta: dict[str, str]
    instructor: dict[str, str]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("two-web-processes")
    redis_url = f"{redis_server}/0"
    forget_counts(redis_url)
    with ExitStack() as stack:
        database_url = (stack.enter_context(fresh_postgres_url()) if POSTGRES_URL
                        else f"sqlite:///{(root / 'data' / 'askta.db').resolve()}")
        env = site_env(root, database_url, ASKTA_REDIS_URL=redis_url,
                       ASKTA_FEEDBACK_RATE_LIMIT="3/minute")
        a, b = start(env), start(env)  # at once: they share the index, key and database
        stack.callback(a.stop)
        stack.callback(b.stop)
        for web in (a, b):
            wait_until(web.ready, STARTUP_S, web.proc)
        ta, instructor = staff(database_url)
        yield Pair(a, b, ta, instructor)
    forget_counts(redis_url)


def forget_counts(redis_url: str) -> None:
    """Remove the rate-limit counters of askta from the database (and nothing else)."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match="*askta-rate*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def answered_by(web: Web, question: str) -> str | None:
    body = web.client.post("/api/chat", json={"message": question}).json()
    return body["entry"]["id"] if body["answered"] else None


def test_a_link_on_a_is_answered_by_b_within_a_second(pair: Pair) -> None:
    reply = pair.b.client.post("/api/chat", json={"message": NOVEL}).json()
    assert reply["answered"] is False and reply["review_id"]
    r = pair.a.client.post(f"/api/review/{reply['review_id']}/link",
                           json={"entry_id": ENTRY}, headers=pair.ta)
    assert r.status_code == 200, r.text
    elapsed = within(lambda: answered_by(pair.b, NOVEL) == ENTRY, 1.0)
    feed = pair.b.client.get("/healthz").json()["change_feed"]
    print(f"\na TA link on A answered by B after {elapsed * 1000:.0f} ms (polling chat); "
          f"the change reached B {feed['last_lag_ms']} ms after A published it")
    assert feed["backend"] == "redis" and feed["connected"] is True
    assert feed["received"] >= 1 and feed["last_lag_ms"] < 1000
    assert pair.a.client.get("/healthz").json()["change_feed"]["published"] >= 1


def test_a_stale_if_match_on_b_gets_409_and_neither_change_is_lost(pair: Pair) -> None:
    url = f"/api/admin/entries/{EDITED}"
    r = pair.b.client.get(url, headers=pair.instructor)
    assert r.status_code == 200
    read, version = r.json(), r.headers["ETag"]
    answer = read["answer"].rstrip("\n") + "\n\nAdded through A.\n"
    r = pair.a.client.put(f"/api/entries/{EDITED}", headers={**pair.instructor,
                          "If-Match": version}, json={**read, "answer": answer})
    assert r.status_code == 200, r.text
    tags = [*read["tags"], "edited-through-b"]
    r = pair.b.client.put(f"/api/entries/{EDITED}", headers={**pair.instructor,
                          "If-Match": version}, json={**read, "tags": tags})
    assert r.status_code == 409, r.text
    current = r.json()["current"]
    assert current["answer"] == answer and r.headers["ETag"] != version
    r = pair.b.client.put(f"/api/entries/{EDITED}", json={**current, "tags": tags},
                          headers={**pair.instructor, "If-Match": r.headers["ETag"]})
    assert r.status_code == 200, r.text

    def a_has_both() -> bool:
        now = pair.a.client.get(url, headers=pair.instructor).json()
        return bool(now["answer"] == answer and now["tags"] == tags)

    within(a_has_both, 1.0)


def test_a_rate_limit_hit_through_a_is_seen_by_b(pair: Pair) -> None:
    vote = {"message": "why relu", "entry_id": ENTRY, "helpful": True}
    for _ in range(3):
        assert pair.a.client.post("/api/feedback", json=vote).status_code == 200
    r = pair.b.client.post("/api/feedback", json=vote)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60


def _form_token(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" (?:value|content)="([^"]+)"', page)
    assert found, f"no {name} on the page"
    return found.group(1)


def test_a_login_on_a_works_on_b_and_a_logout_on_b_ends_it_on_a(pair: Pair) -> None:
    with httpx.Client(base_url=pair.a.base) as a, httpx.Client(base_url=pair.b.base) as b:
        token = _form_token(a.get("/login").text, "csrf_token")
        r = a.post("/login", data={"name": "tess", "password": PASSWORD, "csrf_token": token,
                                   "next": "/review"})
        assert r.status_code == 303, r.text
        session = a.cookies["askta_session"]
        assert a.get("/api/review").status_code == 200
        b.cookies.set("askta_session", session)
        assert b.get("/api/review").status_code == 200
        csrf = _form_token(b.get("/review").text, "csrf-token")
        r = b.post("/logout", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 303
        assert a.get("/api/review").status_code == 401


def workers_on_postgresql_hear_each_other_through_listen_notify(tmp_path: Path) -> None:
    """`askta serve --workers 2`, no Redis: a change through one worker reaches the other
    through PostgreSQL LISTEN/NOTIFY within a second."""
    with fresh_postgres_url() as database_url:
        env = site_env(tmp_path, database_url)
        web = start(env, "--workers", "2")
        try:
            wait_until(web.ready, STARTUP_S, web.proc)
            _, instructor = staff(database_url)
            processes = _feeds(web, want=2)
            assert {f["backend"] for f in processes.values()} == {"postgresql"}
            r = web.client.get(f"/api/admin/entries/{EDITED}", headers=instructor)
            body = {**r.json(), "alternate_questions": [*r.json()["alternate_questions"],
                                                         NOVEL]}
            r = web.client.put(f"/api/entries/{EDITED}", json=body,
                               headers={**instructor, "If-Match": r.headers["ETag"]})
            assert r.status_code == 200, r.text

            def every_worker_knows() -> bool:
                feeds = _feeds(web, want=2)
                return all(f["published"] + f["received"] >= 1 for f in feeds.values())

            within(every_worker_knows, 1.0)
            for _ in range(20):  # new connections: whichever worker takes them answers
                with httpx.Client(base_url=web.base) as fresh:
                    reply = fresh.post("/api/chat", json={"message": NOVEL}).json()
                    assert reply["answered"] and reply["entry"]["id"] == EDITED
        finally:
            web.stop()


# Where PostgreSQL is (CI always starts one, .ci/postgres.sh), as tests/store does.
if POSTGRES_URL:
    test_workers_on_postgresql_hear_each_other_through_listen_notify = (
        workers_on_postgresql_hear_each_other_through_listen_notify)


def _feeds(web: Web, want: int) -> dict[str, Any]:
    """The change feed of each worker, by process, from /healthz over new connections."""
    seen: dict[str, Any] = {}
    for _ in range(400):
        with httpx.Client(base_url=web.base) as fresh:
            r = fresh.get("/healthz")
        assert r.status_code == 200, r.text
        feed = r.json()["change_feed"]
        seen[feed["process"]] = feed
        if len(seen) == want:
            return seen
    raise AssertionError(f"only {len(seen)} of {want} workers answered")
