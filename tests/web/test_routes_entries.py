"""GET /api/entries and GET /api/entries/{id}, and the demo result cache behind `last_run`."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.sandbox.demo_cache import DemoCache
from server.services import Services

ENTRY_KEYS = {"id", "question", "answer_markdown", "answer_html", "tags", "demo"}
OK_RUN = {"status": "ok", "exit_code": 0, "stdout": "hello\n", "stderr": "", "images": [],
          "device": "cpu", "duration_ms": 42}


def test_list_has_published_entries_only(client: TestClient, services: Services) -> None:
    r = client.get("/api/entries")
    assert r.status_code == 200
    rows = r.json()
    assert [row["id"] for row in rows] == [e.id for e in services.kb.published()]
    assert {"sgd-limitations", "worry-about-ai"}.isdisjoint(row["id"] for row in rows)
    for row in rows:
        assert set(row) == {"id", "question", "tags", "status", "has_demo"}
        assert row["status"] == "published"
    by_id = {row["id"]: row for row in rows}
    assert by_id["why-nonlinearities"]["has_demo"] is True
    assert by_id["ai-bias-accountability"]["has_demo"] is False


def test_entry_has_the_contract_fields(client: TestClient, services: Services) -> None:
    r = client.get("/api/entries/why-nonlinearities")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == ENTRY_KEYS
    entry = services.kb.get("why-nonlinearities")
    assert body["question"] == entry.question
    assert body["answer_markdown"] == entry.answer
    assert body["tags"] == entry.tags
    assert '<span class="math math-inline">' in body["answer_html"]
    assert '<pre class="highlight">' in body["answer_html"]
    params = body["demo"].pop("params")
    assert body["demo"] == {"path": "demos/linear_layers_collapse.py", "device": "cpu",
                            "last_run": None}
    assert {"name": "PLOT_HIDDEN", "label": "Hidden units in the plotted nets", "type": "int",
            "min": 1, "max": 64, "step": 1, "choices": None, "default": 16} in params


def test_a_demo_whose_declaration_is_broken_is_shown_without_params(
        client: TestClient, services: Services, caplog: pytest.LogCaptureFixture) -> None:
    demo = services.kb.demo_path(services.kb.get("why-nonlinearities"))
    assert demo is not None
    demo.write_text(demo.read_text().replace("min=1, max=64", "min=64, max=1"))
    body = client.get("/api/entries/why-nonlinearities").json()
    assert body["demo"]["path"] == "demos/linear_layers_collapse.py"
    assert body["demo"]["params"] == []
    assert "parameters of demos/linear_layers_collapse.py are ignored" in caplog.text


def test_entry_without_demo(client: TestClient) -> None:
    assert client.get("/api/entries/ai-bias-accountability").json()["demo"] is None


def test_unpublished_and_unknown_entries_are_404(client: TestClient) -> None:
    for entry_id in ("sgd-limitations", "worry-about-ai", "no-such-entry"):
        r = client.get(f"/api/entries/{entry_id}")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"


def test_last_run_comes_from_the_cache(client: TestClient, services: Services) -> None:
    entry = services.kb.get("why-nonlinearities")
    path = services.kb.demo_path(entry)
    assert path is not None
    cache = services.demo_cache
    cache.put(cache.code_hash(path) or "", "cpu", OK_RUN)
    last = client.get("/api/entries/why-nonlinearities").json()["demo"]["last_run"]
    assert last["stdout"] == "hello\n" and last["duration_ms"] == 42 and "ran_at" in last

    # editing the demo invalidates what was cached for the old code
    path.write_text(path.read_text() + "\nprint('changed')\n")
    assert client.get("/api/entries/why-nonlinearities").json()["demo"]["last_run"] is None


def test_cache_keeps_only_successes_per_device(tmp_path: Path) -> None:
    cache = DemoCache(tmp_path)
    assert cache.put("abc", "cpu", {**OK_RUN, "status": "error"}) is False
    assert cache.get("abc", "cpu") is None
    assert cache.put("abc", "cpu", OK_RUN) is True
    assert cache.get("abc", "cuda") is None
    assert cache.get("abc", "cpu")["stdout"] == "hello\n"  # type: ignore[index]


def test_cache_persists_as_json_files(tmp_path: Path) -> None:
    DemoCache(tmp_path).put("abc", "cuda", {**OK_RUN, "device": "cuda"})
    assert [p.suffix for p in tmp_path.iterdir()] == [".json"]
    assert DemoCache(tmp_path).get("abc", "cuda")["device"] == "cuda"  # type: ignore[index]


def test_cache_ignores_corrupt_files(tmp_path: Path) -> None:
    cache = DemoCache(tmp_path)
    (tmp_path / f"{cache.key('abc', 'cpu')}.json").write_text("{not json")
    assert cache.get("abc", "cpu") is None


def test_feedback_is_recorded(client: TestClient) -> None:
    r = client.post("/api/feedback", json={"message": "why relu?", "entry_id": "why-nonlinearities",
                                           "helpful": True})
    assert r.status_code == 200
    assert r.json() == {"recorded": True, "review_id": None}


def test_unhelpful_feedback_opens_a_review_item(client: TestClient, services: Services) -> None:
    r = client.post("/api/feedback", json={"message": "why relu?", "entry_id": "why-nonlinearities",
                                           "helpful": False})
    review_id = r.json()["review_id"]
    assert review_id
    item = services.store.review_item(review_id)
    assert item.reason == "not_helpful" and item.entry_id == "why-nonlinearities"
