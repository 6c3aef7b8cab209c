"""Runs as resources with the local executor: POST /api/runs, GET /api/runs/{id} and its
Server-Sent Events, replayed from Last-Event-ID. A fake runner with the sandbox's interface
stands in for bubblewrap (tests/web/test_routes_demos.py has it); the tests marked
`sandbox` run a real demo."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi.testclient import TestClient

from server.config import Settings
from server.services import Services
from server.web.app import create_app
from tests.web.test_routes_demos import PNG, FakeRunner

RUN_KEYS = {"id", "entry_id", "status", "exit_code", "stdout", "stderr", "images", "device",
            "duration_ms", "worker"}


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Each event of a text/event-stream body as {"id", "event", "data"} (retry lines
    and comments left out)."""
    events = []
    for block in text.replace("\r\n", "\n").strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" in fields:
            events.append({"id": int(fields["id"]) if "id" in fields else None,
                           "event": fields["event"], "data": json.loads(fields["data"])})
    return events


def start(client: TestClient, entry_id: str = "why-nonlinearities", device: str = "cpu"
          ) -> dict[str, Any]:
    r = client.post("/api/runs", json={"entry_id": entry_id, "device": device})
    assert r.status_code == 202, r.text
    return r.json()


def wait_done(client: TestClient, run_id: str, timeout_s: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body = client.get(f"/api/runs/{run_id}").json()
        if body["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


def test_a_run_is_created_then_read_back(run_client: TestClient, runner: FakeRunner,
                                         services: Services) -> None:
    created = start(run_client)
    assert created["status"] == "queued"
    assert created["events_url"] == f"/api/runs/{created['id']}/events"
    body = wait_done(run_client, created["id"])
    assert set(body) == RUN_KEYS
    assert body["status"] == "ok" and body["exit_code"] == 0 and body["device"] == "cpu"
    assert body["stdout"] == "step 1\nstep 2\n" and body["stderr"] == ""
    assert body["images"] == [{"mime": "image/png", "data_base64": PNG}]
    assert body["entry_id"] == "why-nonlinearities" and body["worker"]
    assert body["duration_ms"] == 12
    demo = services.kb.demo_path(services.kb.get("why-nonlinearities"))
    assert demo is not None and runner.calls == [(demo.read_text(), "cpu")]


def test_events_have_ids_and_end_with_done(run_client: TestClient) -> None:
    created = start(run_client)
    r = run_client.get(created["events_url"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    assert [e["event"] for e in events] == ["stdout", "image", "stdout", "done"]
    assert [e["id"] for e in events] == [1, 2, 3, 4]
    assert events[0]["data"] == {"text": "step 1\n"}
    assert events[-1]["data"]["status"] == "ok" and "stdout" not in events[-1]["data"]
    assert r.text.startswith("retry: ")  # EventSource reconnects after a second


def test_last_event_id_replays_the_rest_once(run_client: TestClient) -> None:
    created = start(run_client)
    wait_done(run_client, created["id"])
    rest = parse_sse(run_client.get(created["events_url"], headers={"Last-Event-ID": "2"}).text)
    assert [(e["id"], e["event"]) for e in rest] == [(3, "stdout"), (4, "done")]
    # after done, a reconnecting EventSource is told to stop
    r = run_client.get(created["events_url"], headers={"Last-Event-ID": "4"})
    assert r.status_code == 204


def test_a_reader_that_reconnects_mid_run_sees_every_event_once(
        settings: Settings, services: Services) -> None:
    services.sandbox = FakeRunner(delay_s=0.6)  # type: ignore[assignment]
    with TestClient(create_app(settings, services=services)) as c:
        created = start(c)
        seen: list[dict[str, Any]] = []
        with c.stream("GET", created["events_url"]) as r:
            buffer = ""
            for chunk in r.iter_text():
                buffer += chunk
                seen = parse_sse(buffer)
                if seen:
                    break  # the connection drops after the first event
        assert [e["id"] for e in seen] == [1]
        assert c.get(f"/api/runs/{created['id']}").json()["status"] == "running"
        rest = parse_sse(c.get(created["events_url"],
                               headers={"Last-Event-ID": str(seen[-1]["id"])}).text)
    events = seen + rest
    assert [e["id"] for e in events] == [1, 2, 3, 4]
    assert [e["event"] for e in events] == ["stdout", "image", "stdout", "done"]


def test_a_run_goes_on_without_a_reader_and_is_recorded(run_client: TestClient,
                                                       services: Services) -> None:
    created = start(run_client)
    assert wait_done(run_client, created["id"])["status"] == "ok"
    deadline = time.monotonic() + 5
    while services.store.summary()["demo_runs"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert services.store.summary()["demo_runs"] == 1
    entry = run_client.get("/api/entries/why-nonlinearities").json()
    assert entry["demo"]["last_run"]["stdout"] == "step 1\nstep 2\n"


def test_a_failing_demo_ends_as_error_with_its_traceback(settings: Settings,
                                                         services: Services) -> None:
    services.sandbox = FakeRunner(status="error")  # type: ignore[assignment]
    with TestClient(create_app(settings, services=services)) as c:
        body = wait_done(c, start(c)["id"])
    assert body["status"] == "error" and body["exit_code"] == 1
    assert "ValueError: boom" in body["stderr"]


def test_unknown_runs_are_404(run_client: TestClient) -> None:
    for url in ("/api/runs/0123456789abcdef0123456789abcdef",
                "/api/runs/0123456789abcdef0123456789abcdef/events"):
        r = run_client.get(url)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_refusals_come_at_once(settings: Settings, services: Services) -> None:
    services.sandbox = FakeRunner(busy=True)  # type: ignore[assignment]
    with TestClient(create_app(settings, services=services)) as c:
        busy = c.post("/api/runs", json={"entry_id": "why-nonlinearities", "device": "cpu"})
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "7"
        services.sandbox = FakeRunner()  # type: ignore[assignment]
        cuda = c.post("/api/runs", json={"entry_id": "why-nonlinearities", "device": "cuda"})
        assert cuda.status_code == 422
        assert cuda.json()["error"]["code"] == "device_unavailable"
        assert "CUDA" in cuda.json()["error"]["message"]
        missing = c.post("/api/runs", json={"entry_id": "no-such-entry"})
        assert missing.status_code == 404
        bad = c.post("/api/runs", json={"entry_id": "why-nonlinearities", "device": "tpu"})
        assert bad.status_code == 422


def test_without_a_sandbox_runs_are_503_with_the_reason(client: TestClient) -> None:
    r = client.post("/api/runs", json={"entry_id": "why-nonlinearities"})
    assert r.status_code == 503 and "disabled" in r.json()["error"]["message"]


def test_runs_are_rate_limited_like_demo_runs(settings: Settings, services: Services) -> None:
    services.sandbox = FakeRunner()  # type: ignore[assignment]
    services.rate_limits = type(services.rate_limits).from_settings(
        settings.model_copy(update={"demo_rate_limit": "1/minute"}))
    with TestClient(create_app(settings, services=services)) as c:
        start(c)
        r = c.post("/api/runs", json={"entry_id": "why-nonlinearities"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_health_and_metrics_name_the_executor(run_client: TestClient) -> None:
    runs = run_client.get("/healthz").json()["runs"]
    assert runs["executor"] == "local" and runs["workers"]["cpu"] == 1
    text = run_client.get("/metrics").text
    assert 'askta_runs_executor{executor="local"} 1.0' in text
    assert 'askta_runs_workers{device="cpu"} 1.0' in text
