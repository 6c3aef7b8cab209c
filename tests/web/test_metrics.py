"""GET /metrics: the Prometheus metrics appear with their labels, move with requests, stay
few whatever URLs clients ask for, belong to each app alone, and can require a token."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from server.config import Settings
from server.sandbox.models import Event, RunResult
from server.services import Services
from server.web.app import create_app

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

ANSWERED = "Why do we need ReLUs or other nonlinearities?"


def scrape(client: TestClient, **headers: str) -> Samples:
    """Every sample of /metrics: {(name, labels): value}."""
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels) in samples if n == name]


def test_metric_names_and_labels_appear_and_move(client: TestClient,
                                                 services: Services) -> None:
    before = scrape(client)
    for name in ("askta_chat_duration_seconds_count", "askta_sandbox_queue_depth",
                 "askta_sandbox_available", "askta_index_vectors", "askta_review_open_items",
                 "askta_kb_published_entries", "process_resident_memory_bytes"):
        assert any(n == name for n, _ in before), name
    assert value(before, "askta_chat_questions_total", outcome="answered") == 0
    assert value(before, "askta_chat_questions_total", outcome="routed") == 0
    assert value(before, "askta_index_vectors") == len(services.searcher.index) > 0
    assert value(before, "askta_sandbox_available") == 0  # the test settings disable it
    open_before = value(before, "askta_review_open_items")
    assert open_before == services.store.count_review_items("open")

    assert client.post("/api/chat", json={"message": ANSWERED}).json()["answered"] is True
    routed = client.post("/api/chat", json={"message": "qwertyuiop zxcvbnm"}).json()
    assert routed["answered"] is False and routed["review_id"]
    assert client.get("/api/entries/why-nonlinearities").status_code == 200

    after = scrape(client)
    assert value(after, "askta_chat_questions_total", outcome="answered") == 1
    assert value(after, "askta_chat_questions_total", outcome="routed") == 1
    assert value(after, "askta_chat_duration_seconds_count") == 2
    assert value(after, "askta_chat_duration_seconds_sum") > 0
    assert value(after, "askta_chat_duration_seconds_bucket", le="+Inf") == 2
    assert value(after, "askta_http_requests_total",
                 method="POST", route="/api/chat", status="200") == 2
    assert value(after, "askta_http_requests_total",
                 method="GET", route="/api/entries/{entry_id}", status="200") == 1
    # the first scrape was counted too, by the time of the second
    assert value(after, "askta_http_requests_total",
                 method="GET", route="/metrics", status="200") >= 1
    assert value(after, "askta_http_request_duration_seconds_count",
                 method="POST", route="/api/chat") == 2
    assert value(after, "askta_review_open_items") == open_before + 1
    assert not any(n.endswith("_created") for n, _ in after)


def test_raw_urls_do_not_explode_the_labels(client: TestClient) -> None:
    ids = [uuid.uuid4().hex for _ in range(50)]
    for entry_id in ids:
        assert client.get(f"/api/entries/{entry_id}").status_code == 404
    for entry_id in ids[:10]:
        assert client.get(f"/no/such/page/{entry_id}").status_code == 404
        assert client.get(f"/static/{entry_id}.css").status_code == 404
    samples = scrape(client)
    requests = series(samples, "askta_http_requests_total")
    entry_series = [s for s in requests if s["route"] == "/api/entries/{entry_id}"]
    assert entry_series == [{"method": "GET", "route": "/api/entries/{entry_id}",
                             "status": "404"}]
    assert value(samples, "askta_http_requests_total", method="GET",
                 route="/api/entries/{entry_id}", status="404") == 50
    assert value(samples, "askta_http_requests_total", method="GET",
                 route="<unmatched>", status="404") == 10
    assert value(samples, "askta_http_requests_total", method="GET",
                 route="/static/{path}", status="404") == 10
    text = client.get("/metrics").text
    assert not any(entry_id in text for entry_id in ids)
    # an odd method is "other", not a label value of the client's choosing
    client.request("BREW", "/api/chat")
    methods = {s["method"] for s in series(scrape(client), "askta_http_requests_total")}
    assert methods <= {"GET", "POST", "other"} and "other" in methods


def test_each_app_has_its_own_registry(settings: Settings, services: Services,
                                       client: TestClient) -> None:
    client.post("/api/chat", json={"message": ANSWERED})
    other = Services.start(settings.model_copy(update={"data_dir": settings.data_dir / "2"}),
                           embedder=services.searcher.embedder)
    try:
        assert other.metrics.registry is not services.metrics.registry
        with TestClient(create_app(settings, services=other)) as c2:
            assert value(scrape(c2), "askta_chat_questions_total", outcome="answered") == 0
        assert value(scrape(client), "askta_chat_questions_total", outcome="answered") == 1
    finally:
        other.close()
    # nothing in prometheus-client's global default registry
    assert not [m for m in REGISTRY.collect() if m.name.startswith("askta")]


@pytest.fixture
def token_client(settings: Settings, services: Services) -> Iterator[TestClient]:
    settings = settings.model_copy(update={"metrics_token": "s3cret-scrape-token"})
    services.settings = settings
    with TestClient(create_app(settings, services=services)) as c:
        yield c


def test_a_metrics_token_is_required_when_set(token_client: TestClient) -> None:
    r = token_client.get("/metrics")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthorized"
    for wrong in ("Bearer nope", "Basic s3cret-scrape-token", "s3cret-scrape-token",
                  "Bearer s3cret-scrape-token-and-more"):
        assert token_client.get("/metrics", headers={"Authorization": wrong}).status_code == 401
    samples = scrape(token_client, Authorization="Bearer s3cret-scrape-token")
    assert value(samples, "askta_http_requests_total", method="GET", route="/metrics",
                 status="401") == 5
    # the token guards /metrics only
    assert token_client.get("/healthz").status_code == 200


def test_metrics_are_open_without_a_token(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 200


def test_openmetrics_when_the_scraper_asks(client: TestClient) -> None:
    r = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")


def test_a_failing_part_is_left_out_not_the_scrape(client: TestClient, services: Services,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(status: str | None = "open") -> int:
        raise RuntimeError("database gone")

    monkeypatch.setattr(services.store, "count_review_items", broken)
    samples = scrape(client)
    assert not series(samples, "askta_review_open_items")
    assert value(samples, "askta_index_vectors") > 0


class FakeRunner:
    """What /metrics and the demo routes read of the sandbox runner."""

    cuda_available = False
    waiting, running = 3, 1

    def warm_workers(self) -> dict[str, int]:
        return {"cpu": 2, "cuda": 0}

    def has_free_runner(self, device: str = "auto") -> bool:
        return True

    def close(self) -> None:
        pass

    async def astream(self, code: str, device: str = "auto") -> AsyncIterator[Event]:
        yield Event("stdout", "hello\n")
        yield Event("done", RunResult(status="ok", exit_code=0, stdout="hello\n", stderr="",
                                      images=[], device="cpu", duration_ms=5).to_dict())


def test_sandbox_gauges_and_demo_runs(client: TestClient, services: Services) -> None:
    services.sandbox = FakeRunner()  # type: ignore[assignment]
    run = "/api/entries/mse-vs-outliers/demo/run"
    assert client.post(run, json={"device": "cpu"}).json()["status"] == "ok"
    assert client.post(run, json={"device": "cpu"}).json()["status"] == "ok"
    stream = client.get("/api/entries/mse-vs-outliers/demo/stream?device=cpu")
    assert "event: done" in stream.text
    samples = scrape(client)
    assert value(samples, "askta_sandbox_available") == 1
    assert value(samples, "askta_sandbox_queue_depth") == 3
    assert value(samples, "askta_sandbox_running") == 1
    assert value(samples, "askta_sandbox_warm_workers", device="cpu") == 2
    assert value(samples, "askta_sandbox_warm_workers", device="cuda") == 0
    assert value(samples, "askta_demo_runs_total", status="ok", device="cpu") == 3
    assert value(samples, "askta_http_requests_total", method="GET",
                 route="/api/entries/{entry_id}/demo/stream", status="200") == 1
