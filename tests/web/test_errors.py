"""The one error shape, {"error": {"code", "message"}}, for every way a request can fail."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from server.accounts import Accounts
from server.config import Settings
from server.sandbox.errors import DeviceUnavailable, SandboxBusy, SandboxUnavailable
from server.services import Services
from server.web.app import create_app

RUN = "/api/entries/why-nonlinearities/demo/run"
STREAM = "/api/entries/why-nonlinearities/demo/stream"
SECRET = "db-password-in-a-stack-trace"


class RefusingRunner:
    """A sandbox runner that refuses every run with `error`."""

    cuda_available = False

    def __init__(self, error: Exception):
        self.error = error

    def close(self) -> None:
        pass

    def has_free_runner(self, device: str = "auto") -> bool:
        return False

    async def astream(self, code: str, device: str = "auto") -> AsyncIterator[Any]:
        raise self.error
        yield  # an async generator, like the real runner's


class BrokenStore:
    """A database that fails the way a real outage would: with an internal message."""

    def record_feedback(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(SECRET)


def repeat(n: int, send: Callable[[TestClient], httpx.Response]
           ) -> Callable[[TestClient], httpx.Response]:
    """Send the same request n times and return the last response."""
    def go(c: TestClient) -> httpx.Response:
        for _ in range(n - 1):
            send(c)
        return send(c)
    return go


def chunked(size: int) -> Iterator[bytes]:
    """A body without Content-Length, so only the streaming check can catch it."""
    yield b'{"message": "'
    for _ in range(size // 1000):
        yield b"x" * 1000
    yield b'"}'


@dataclass
class Case:
    status: int
    code: str
    send: Callable[[TestClient], httpx.Response]
    settings: dict[str, Any] = field(default_factory=dict)
    sandbox: Any = None
    store: Any = None


CASES: dict[str, Any] = {
    "unknown entry": Case(404, "not_found", lambda c: c.get("/api/entries/no-such-entry")),
    "unpublished entry": Case(404, "not_found", lambda c: c.get("/api/entries/sgd-limitations")),
    "unknown path": Case(404, "not_found", lambda c: c.get("/api/nowhere")),
    "demo of unknown entry": Case(404, "not_found", lambda c: c.post(
        "/api/entries/no-such-entry/demo/run", json={})),
    "entry without demo": Case(404, "not_found", lambda c: c.get(
        "/api/entries/ai-bias-accountability/demo/stream")),
    "feedback on unknown entry": Case(404, "not_found", lambda c: c.post(
        "/api/feedback", json={"message": "hm", "entry_id": "no-such-entry", "helpful": True})),
    "staff only, no credentials": Case(401, "unauthorized", lambda c: c.get("/api/review")),
    "staff only, bad token": Case(401, "unauthorized", lambda c: c.post(
        "/api/review/x/dismiss", headers={"Authorization": "Bearer not-a-token"})),
    "wrong method": Case(405, "method_not_allowed", lambda c: c.delete("/api/entries")),
    "malformed JSON, chat": Case(400, "malformed_json", lambda c: c.post(
        "/api/chat", content=b'{"message": ', headers={"content-type": "application/json"})),
    "malformed JSON, feedback": Case(400, "malformed_json", lambda c: c.post(
        "/api/feedback", content=b"{nope}", headers={"content-type": "application/json"})),
    "malformed JSON, demo run": Case(400, "malformed_json", lambda c: c.post(
        RUN, content=b"[", headers={"content-type": "application/json"})),
    "message over 1000 characters, chat": Case(413, "payload_too_large", lambda c: c.post(
        "/api/chat", json={"message": "x" * 1001})),
    "message over 1000 characters, feedback": Case(413, "payload_too_large", lambda c: c.post(
        "/api/feedback", json={"message": "x" * 1001, "entry_id": "why-nonlinearities",
                               "helpful": False})),
    "body over the limit": Case(413, "payload_too_large", lambda c: c.post(
        "/api/chat", json={"message": "x" * 70_000})),
    "chunked body over the limit": Case(413, "payload_too_large", lambda c: c.post(
        "/api/chat", content=chunked(70_000), headers={"content-type": "application/json"})),
    "missing field": Case(422, "invalid", lambda c: c.post("/api/chat", json={})),
    "empty message": Case(422, "invalid", lambda c: c.post("/api/chat", json={"message": "  "})),
    "feedback without verdict": Case(422, "invalid", lambda c: c.post(
        "/api/feedback", json={"message": "x", "entry_id": "why-nonlinearities"})),
    "unknown device, run": Case(422, "invalid", lambda c: c.post(RUN, json={"device": "tpu"})),
    "unknown device, stream": Case(422, "invalid", lambda c: c.get(STREAM,
                                                                  params={"device": "tpu"})),
    "no GPU for cuda": Case(422, "device_unavailable",
                            lambda c: c.post(RUN, json={"device": "cuda"}),
                            sandbox=RefusingRunner(DeviceUnavailable("no CUDA GPU here"))),
    "chat rate limit": Case(429, "rate_limited", repeat(3, lambda c: c.post(
        "/api/chat", json={"message": "why relu"})), settings={"chat_rate_limit": "2/minute"}),
    "demo rate limit": Case(429, "rate_limited", repeat(2, lambda c: c.get(STREAM)),
                            settings={"demo_rate_limit": "1/minute"}),
    "no sandbox": Case(503, "unavailable", lambda c: c.post(RUN, json={})),
    "sandbox broken": Case(503, "unavailable", lambda c: c.get(STREAM),
                           sandbox=RefusingRunner(SandboxUnavailable("bwrap failed"))),
    "pool and queue full, run": Case(503, "unavailable", lambda c: c.post(RUN, json={}),
                                     sandbox=RefusingRunner(SandboxBusy("busy", 3))),
    "pool and queue full, stream": Case(503, "unavailable", lambda c: c.get(STREAM),
                                        sandbox=RefusingRunner(SandboxBusy("busy", 3))),
    "internal error": Case(500, "internal", lambda c: c.post(
        "/api/feedback", json={"message": "x", "entry_id": "why-nonlinearities", "helpful": True}),
                           store=BrokenStore()),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_error_shape(case: Case, settings: Settings, services: Services) -> None:
    settings = settings.model_copy(update=case.settings)
    changes: dict[str, Any] = {"settings": settings}
    if case.sandbox is not None:
        changes["sandbox"] = case.sandbox
    if case.store is not None:
        changes["store"] = case.store
    app = create_app(settings, services=dataclasses.replace(services, **changes))
    with TestClient(app, raise_server_exceptions=False) as c:
        r = case.send(c)

    assert r.status_code == case.status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["error"] and sorted(body["error"]) == ["code", "message"]
    assert body["error"]["code"] == case.code
    message = body["error"]["message"]
    assert isinstance(message, str) and len(message) > 5
    assert "Traceback" not in r.text and 'File "' not in r.text and SECRET not in r.text
    if case.status == 429 or (case.status == 503 and isinstance(case.sandbox, RefusingRunner)
                              and isinstance(case.sandbox.error, SandboxBusy)):
        assert int(r.headers["Retry-After"]) >= 1


# Requests that once answered 500 or lost data, found by fuzzing the API (tests/web/test_fuzz.py).
# Sent with an instructor's token, which the public routes ignore.
JSON = {"content-type": "application/json"}
LONG_DEMO = "demos/" + "x" * 290 + ".py"  # a name longer than the file system allows


def draft_with_demo(demo: str) -> Callable[[TestClient], httpx.Response]:
    def go(c: TestClient) -> httpx.Response:
        review_id = c.post("/api/chat", json={"message": "qwzx plorb blorp?"}).json()["review_id"]
        return c.post(f"/api/review/{review_id}/draft", json={
            "id": "a-new-entry", "question": "What is new?", "answer": "This.", "demo": demo})
    return go


FUZZ_CASES: dict[str, Any] = {
    "NUL in a question": Case(422, "invalid", lambda c: c.post(
        "/api/chat", json={"message": "why\x00 relu"})),
    "lone surrogate in a question": Case(422, "invalid", lambda c: c.post(
        "/api/chat", content=b'{"message": "why \\ud800 relu"}', headers=JSON)),
    "NUL in a session id": Case(422, "invalid", lambda c: c.post(
        "/api/chat", json={"message": "why relu", "session_id": "s\x00"})),
    "NUL in feedback": Case(422, "invalid", lambda c: c.post("/api/feedback", json={
        "message": "why\x00 relu", "entry_id": "why-nonlinearities", "helpful": False})),
    "demo file name too long, test demo": Case(422, "invalid", lambda c: c.post(
        "/api/admin/demo/test", json={"demo": LONG_DEMO})),
    "NUL in a demo file name, test demo": Case(422, "invalid", lambda c: c.post(
        "/api/admin/demo/test", json={"demo": "demos/x\x00.py"})),
    "demo path too long, draft": Case(422, "invalid_entry", draft_with_demo(LONG_DEMO)),
}


@pytest.mark.parametrize("case", FUZZ_CASES.values(), ids=list(FUZZ_CASES))
def test_fuzzed_error_shape(case: Case, settings: Settings, services: Services) -> None:
    accounts = Accounts(services.store)
    accounts.add("instructor", "instructor", "a-long-enough-password")
    app = create_app(settings, services=services)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {accounts.issue_token('instructor')}"
        r = case.send(c)

    assert r.status_code == case.status, r.text
    body = r.json()
    assert body["error"]["code"] == case.code and len(body["error"]["message"]) > 5


def test_a_question_that_is_not_text_loses_no_other_question(client: TestClient,
                                                             services: Services) -> None:
    """The question log is written in batches: one question the database cannot store (a lone
    surrogate anywhere, a NUL in PostgreSQL) used to take its whole batch with it."""
    assert client.post("/api/chat", json={"message": "why relu"}).status_code == 200
    assert client.post("/api/chat", content=b'{"message": "\\udfff"}',
                       headers=JSON).status_code == 422
    assert client.post("/api/chat", json={"message": "why\x00 relu"}).status_code == 422
    assert client.post("/api/chat", json={"message": "what is a tensor"}).status_code == 200
    assert services.store.summary()["questions"] == 2
