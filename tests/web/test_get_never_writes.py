"""A GET never writes to the database: every GET route, called by a logged-in instructor
over a queue full of items no read has filed yet, runs no INSERT, UPDATE or DELETE."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from starlette.routing import Route

from server.accounts import Accounts
from server.services import Services
from tests.web.test_routes_demos import FakeRunner

# BEGIN IMMEDIATE is how a write session starts on SQLite: a GET should not even open one.
WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|UPSERT|BEGIN IMMEDIATE)\b", re.IGNORECASE)
# GET routes allowed to write, and why.
EXCUSED = {
    "/api/entries/{entry_id}/demo/stream": "runs a demo and logs the run (EventSource can "
                                           "only GET)",
}


@contextmanager
def recorded_writes(engine: Engine) -> Iterator[list[str]]:
    """The writing statements run on `engine` (and its write sessions) inside the block."""
    seen: list[str] = []

    def before_cursor_execute(conn: Any, cursor: Any, statement: str, parameters: Any,
                              context: Any, executemany: bool) -> None:
        if WRITE.match(statement):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before_cursor_execute)


def get_routes(routes: list[Any]) -> list[str]:
    """The path of every GET route, also inside included routers."""
    out: list[str] = []
    for r in routes:
        if isinstance(r, Route) and r.methods and "GET" in r.methods:
            out.append(r.path)
        inner = getattr(r, "original_router", None) or getattr(r, "router", None)
        if inner is not None and hasattr(inner, "routes"):
            out.extend(get_routes(inner.routes))
    return sorted(set(out))


def log_in(client: TestClient, services: Services) -> None:
    """Log in through the form as an instructor (who may open every staff page)."""
    Accounts(services.store).add("ian", "instructor", "correct horse")
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"name": "ian", "password": "correct horse",
                                    "csrf_token": token, "next": "/review"},
                    follow_redirects=False)
    assert r.status_code == 303


def test_no_get_route_writes(client: TestClient, services: Services) -> None:
    store = services.store
    # A queue no read has filed: a chat question with no group key, a near-duplicate of it,
    # and an item without embedding or suggestions (as an older server stored them).
    asked = client.post("/api/chat", json={"message": "xylophone quartet rehearsal schedule"})
    rid = asked.json()["review_id"]
    client.post("/api/chat", json={"message": "xylophone quartet rehearsal schedule?"})
    store.record_feedback("why do we need relu", "why-nonlinearities", False, client="c")
    client.post("/api/feedback", json={"message": "relu, but why", "helpful": False,
                                       "entry_id": "why-nonlinearities"})
    log_in(client, services)
    unfiled = [i.id for i in store.review_items() if i.group_key is None]  # waits for the log
    assert rid in unfiled and len(unfiled) == 4

    entry_id = next(e.id for e in services.kb.published() if e.demo)
    # a finished run to read back (its run, and its logging, happen on the POST)
    services.sandbox = FakeRunner()  # type: ignore[assignment]
    run_id = client.post("/api/runs", json={"entry_id": entry_id}).json()["id"]
    while client.get(f"/api/runs/{run_id}").json()["status"] in ("queued", "running"):
        time.sleep(0.02)
    time.sleep(0.2)  # the run's log line is written after its end
    paths = get_routes(client.app.routes)  # type: ignore[attr-defined]
    assert "/api/review/{review_id}" in paths and set(EXCUSED) <= set(paths)
    called = []
    with recorded_writes(store.engine) as writes:
        for path in paths:
            if path in EXCUSED:
                continue
            url = (path.replace("{review_id}", rid).replace("{entry_id}", entry_id)
                   .replace("{run_id}", run_id))
            assert "{" not in url, f"no value for the parameters of {path}: add one"
            r = client.get(url)
            assert r.status_code == 200, (url, r.status_code, r.text[:300])
            called.append(path)
            assert writes == [], f"GET {url} wrote to the database: {writes}"
    for path in ("/", "/entries", "/entries/{entry_id}", "/api/entries",
                 "/api/entries/{entry_id}", "/healthz", "/readyz", "/review", "/api/review",
                 "/api/review/{review_id}", "/admin/stats", "/api/admin/stats"):
        assert path in called
    assert [i.id for i in store.review_items() if i.group_key is None] == unfiled

    # The listener does see writes: an action files the queue and closes the item.
    with recorded_writes(store.engine) as writes:
        r = client.post(f"/api/review/{rid}/dismiss", json={"reason": "off-topic"},
                        headers={"X-CSRF-Token": csrf_token(client)})
        assert r.status_code == 200, r.text
    assert any(w.lstrip().upper().startswith("UPDATE") for w in writes)
    assert not [i for i in store.review_items() if i.group_key is None]


def csrf_token(client: TestClient) -> str:
    """The session's CSRF token, as the review page hands it to its script."""
    page = client.get("/review")
    return re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
