"""Log lines: JSON (ASKTA_LOG_FORMAT=json) that parses, one object per line, with the
request id that also comes back as X-Request-ID; the id taken from the client when sane."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.config import Settings
from server.logs import (
    ACCESS_LOGGER,
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    accept_request_id,
    log_config,
)
from server.services import Services
from server.web.app import create_app

REPO = Path(__file__).resolve().parents[2]
GENERATED = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the server's loggers write in the JSON format, for the test's duration."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root, askta = logging.getLogger(), logging.getLogger("askta")
    old_level = askta.level
    root.addHandler(handler)
    askta.setLevel(logging.INFO)
    try:
        yield buf
    finally:
        root.removeHandler(handler)
        askta.setLevel(old_level)


def parsed(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_access_lines_are_json_with_the_request_id(client: TestClient,
                                                    json_lines: io.StringIO) -> None:
    r = client.post("/api/chat", json={"message": "why do we need relu"})
    missing = client.get("/api/entries/no-such-entry")
    lines = parsed(json_lines)
    access = [x for x in lines if x["logger"] == ACCESS_LOGGER]
    assert len(access) == 2
    chat, lost = access
    assert set(chat) >= {"timestamp", "level", "logger", "message", "request_id", "method",
                         "path", "status", "duration_ms"}
    assert chat["method"] == "POST" and chat["path"] == "/api/chat" and chat["status"] == 200
    assert chat["level"] == "INFO" and isinstance(chat["duration_ms"], float)
    assert chat["request_id"] == r.headers["x-request-id"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", chat["timestamp"])
    assert lost["status"] == 404 and lost["path"] == "/api/entries/no-such-entry"
    assert lost["request_id"] == missing.headers["x-request-id"] != chat["request_id"]


def test_a_sane_incoming_request_id_comes_back(client: TestClient,
                                               json_lines: io.StringIO) -> None:
    for rid in ("abc-123", "A.b_C-9", "x" * 64, "0f6a1f0e-7d3c-4a57-9d39-5bd2f7d2b1f3"):
        r = client.get("/healthz", headers={"X-Request-ID": rid})
        assert r.headers["x-request-id"] == rid
    assert [x["request_id"] for x in parsed(json_lines)
            if x["logger"] == ACCESS_LOGGER][-1] == "0f6a1f0e-7d3c-4a57-9d39-5bd2f7d2b1f3"


@pytest.mark.parametrize("bad", ["", "has space", "x" * 65, "semi;colon", "new\\nline",
                                 "é", "<script>", "a/b"])
def test_an_odd_incoming_request_id_is_replaced(client: TestClient, bad: str) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": bad.encode("utf-8")})  # type: ignore[dict-item]
    assert r.headers["x-request-id"] != bad and GENERATED.match(r.headers["x-request-id"])


def test_request_ids_are_generated_and_distinct(client: TestClient) -> None:
    ids = {client.get("/healthz").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20 and all(GENERATED.match(i) for i in ids)
    # errors carry one too
    assert GENERATED.match(client.get("/nowhere").headers["x-request-id"])
    assert GENERATED.match(client.post("/api/chat", json={}).headers["x-request-id"])


def test_accept_request_id() -> None:
    assert accept_request_id("ok-1") == "ok-1"
    assert GENERATED.match(accept_request_id(None))
    assert GENERATED.match(accept_request_id("no good"))


def test_a_crash_is_logged_with_the_request_id_it_answers_with(
        settings: Settings, services: Services, json_lines: io.StringIO) -> None:
    app = create_app(settings, services=services)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom", headers={"X-Request-ID": "crash-1"})
    assert r.status_code == 500 and r.headers["x-request-id"] == "crash-1"
    lines = parsed(json_lines)
    error = next(x for x in lines if x["level"] == "ERROR")
    assert error["request_id"] == "crash-1" and "kaboom" in error["exception"]
    access = next(x for x in lines if x["logger"] == ACCESS_LOGGER)
    assert access["status"] == 500 and access["request_id"] == "crash-1"
    assert services.metrics.requests.labels("GET", "/boom", "500")._value.get() == 1


def test_text_format_shows_the_request_id() -> None:
    record = logging.LogRecord("askta", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.request_id = "rid-7"
    assert TextFormatter().format(record).endswith("askta: hello world [rid-7]")


def test_the_log_config_gives_one_json_object_per_line() -> None:
    """The dictConfig `askta serve` hands to uvicorn, applied in a fresh interpreter."""
    code = (
        "import logging, logging.config\n"
        "from server.logs import log_config, request_id\n"
        "logging.config.dictConfig(log_config('json', 'INFO'))\n"
        "request_id.set('r-1')\n"
        "logging.getLogger('askta').info('multi\\nline %s', 'message')\n"
        "logging.getLogger('server.store').warning('from a module logger')\n"
        "logging.getLogger('askta').debug('not at INFO')\n"
        "logging.getLogger('uvicorn.access').info('silenced: askta writes access lines')\n"
        "logging.getLogger('sentence_transformers').info('a library below WARNING')\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    logging.getLogger('uvicorn.error').exception('crash')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stderr.splitlines()]
    assert [x["message"] for x in lines] == ["multi\nline message", "from a module logger",
                                             "crash"]
    assert [x["logger"] for x in lines] == ["askta", "server.store", "uvicorn.error"]
    assert all(x["request_id"] == "r-1" for x in lines)
    assert "ZeroDivisionError" in lines[-1]["exception"]


def test_the_settings_choose_the_format() -> None:
    assert Settings(log_format="JSON").log_format == "json"  # type: ignore[arg-type]
    assert Settings().log_format == "text"
    text = log_config("text")["handlers"]["default"]["formatter"]
    assert text == "text" and log_config("json")["handlers"]["default"]["formatter"] == "json"
    with pytest.raises(ValueError):
        Settings(log_format="xml")  # type: ignore[arg-type]
