"""POST /api/chat and GET /healthz, through the app factory."""

from __future__ import annotations

from fastapi.testclient import TestClient

from server.config import Settings
from server.services import Services
from server.web.app import create_app


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["entries"] == 17
    assert body["index"]["vectors"] > 17 and body["index"]["model"].startswith("hashing")


def test_answered_question(client: TestClient) -> None:
    r = client.post("/api/chat", json={"message": "Why do we need ReLUs or other nonlinearities?"})
    assert r.status_code == 200
    body = r.json()
    assert body["answered"] is True and body["review_id"] is None
    entry = body["entry"]
    assert entry["id"] == "why-nonlinearities"
    assert set(entry) >= {"id", "question", "answer_markdown", "answer_html", "tags", "demo"}
    assert entry["demo"]["path"] == "demos/linear_layers_collapse.py"
    assert body["score"] > 0.9
    assert all(s["id"] != "why-nonlinearities" for s in body["suggestions"])


def test_unanswered_question_goes_to_the_queue(client: TestClient, services: Services) -> None:
    r = client.post("/api/chat", json={"message": "qwertyuiop zxcvbnm", "session_id": "s1"})
    body = r.json()
    assert r.status_code == 200
    assert body["answered"] is False and body["entry"] is None
    assert isinstance(body["review_id"], str) and body["review_id"]
    assert set(body) == {"answered", "entry", "score", "suggestions", "review_id", "near_miss"}
    assert body["near_miss"] is None  # nothing close


def test_unanswered_entry_is_not_served(client: TestClient) -> None:
    r = client.post("/api/chat", json={"message": "What are limitations of SGD?"})
    body = r.json()
    assert body["answered"] is False and body["entry"] is None and body["review_id"]
    assert all(s["id"] not in ("sgd-limitations", "worry-about-ai") for s in body["suggestions"])


def test_script_in_question_is_harmless(client: TestClient) -> None:
    r = client.post("/api/chat", json={"message": "<script>alert(1)</script> relu?"})
    assert r.status_code == 200


def test_message_limits(client: TestClient) -> None:
    r = client.post("/api/chat", json={"message": "x" * 1001})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    r = client.post("/api/chat", json={"message": "   "})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid"
    r = client.post("/api/chat", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
    r = client.post("/api/chat", json={"msg": "hi"})
    assert r.status_code == 422 and "message" in r.json()["error"]["message"]
    r = client.post(
        "/api/chat",
        content=b"{" + b" " * 100_000 + b"}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413


def test_a_lone_question_is_answered_on_the_event_loop(client: TestClient,
                                                       services: Services) -> None:
    """No thread hand-off for a question asked alone (server/web/blocking.py)."""
    before = services.answering.inline
    r = client.post("/api/chat", json={"message": "Why do we need ReLUs or other nonlinearities?"})
    assert r.status_code == 200 and r.json()["answered"] is True
    assert services.answering.inline == before + 1 and services.answering.in_flight == 0


def test_a_started_server_freezes_its_long_lived_objects(settings: Settings) -> None:
    """Full collections would otherwise scan the model and index at every pass (~250 ms)."""
    import gc

    gc.unfreeze()
    try:
        with TestClient(create_app(settings)) as c:
            assert c.get("/healthz").status_code == 200
            assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
