"""GET /readyz (and the reasons /healthz shows): check by check, 200 or 503, no host paths."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from indexer.embedders import HashingEmbedder
from server.sandbox import SandboxUnavailable
from server.services import CONTAINER_USERNS_HINT, Services
from server.web.routes import health
from server.web.routes.health import public_reason


def test_ready_without_the_sandbox(client: TestClient) -> None:
    """The test services have the sandbox disabled: ready, with the sandbox reported off."""
    r = client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    checks = body["checks"]
    assert set(checks) == {"model", "index", "database", "sandbox", "kb", "change_feed"}
    feed = checks["change_feed"]  # one process: no feed, nothing to hear, ok
    assert feed["ok"] is True and feed["backend"] == "off" and feed["required"] is False
    assert checks["model"]["ok"] is True and checks["model"]["name"].startswith("hashing")
    assert checks["model"]["dimension"] == 256
    assert checks["index"]["ok"] is True and checks["index"]["vectors"] > 17
    assert checks["index"]["entries"] == 17
    assert checks["database"] == {"ok": True, "backend": "sqlite", "required": True}
    sandbox = checks["sandbox"]
    assert sandbox["ok"] is False and sandbox["required"] is False
    assert "ASKTA_SANDBOX_ENABLED=false" in sandbox["reason"]
    assert all(checks[name]["required"] for name in ("model", "index", "database"))


def test_ready_with_a_running_sandbox(client: TestClient, services: Services,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "sandbox", object())
    monkeypatch.setattr(services, "sandbox_error", None)
    checks = client.get("/readyz").json()["checks"]
    assert checks["sandbox"] == {"ok": True, "required": False}


def test_an_empty_index_is_not_ready(client: TestClient, services: Services) -> None:
    for entry_id in list(services.searcher.index.entry_ids):
        services.searcher.remove(entry_id)
    r = client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not ready"
    index = body["checks"]["index"]
    assert index["ok"] is False and index["vectors"] == 0 and "empty" in index["reason"]
    assert body["checks"]["model"]["ok"] and body["checks"]["database"]["ok"]


def test_a_model_other_than_the_index_is_not_ready(client: TestClient, services: Services,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.searcher, "embedder", HashingEmbedder(64))
    r = client.get("/readyz")
    assert r.status_code == 503
    model = r.json()["checks"]["model"]
    assert model["ok"] is False and model["dimension"] == 64
    assert "not the one the index was built with" in model["reason"]


def test_a_database_that_fails_is_not_ready_and_hides_its_path(
    client: TestClient, services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no such folder" / "askta.db"
    broken = create_engine(f"sqlite:///{missing}")
    monkeypatch.setattr(services.store, "engine", broken)
    r = client.get("/readyz")
    broken.dispose()
    assert r.status_code == 503
    body = r.json()
    database = body["checks"]["database"]
    assert database["ok"] is False and database["required"] is True
    assert database["reason"].startswith("OperationalError: unable to open database file")
    assert str(tmp_path) not in r.text
    assert body["checks"]["model"]["ok"] and body["checks"]["index"]["ok"]


def test_a_database_that_hangs_is_not_ready_within_the_timeout(
    client: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def connect_never() -> None:
        release.wait(30)
        raise OSError("released")

    hanging = create_engine("sqlite://", creator=connect_never)
    monkeypatch.setattr(services.store, "engine", hanging)
    monkeypatch.setattr(health, "DATABASE_TIMEOUT_S", 0.3)
    try:
        started = time.monotonic()
        r = client.get("/readyz")
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert r.status_code == 503
    assert r.json()["checks"]["database"]["reason"] == "the database did not answer within 0.3 s"
    assert elapsed < 3


def test_sandbox_reasons_show_no_host_paths(client: TestClient, services: Services,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "sandbox_error", (
        "Demo runs are disabled: the sandbox interpreter /opt/askta/sandbox-venv/bin/python "
        "does not exist: run `make sandbox-env` or set ASKTA_SANDBOX_PYTHON"))
    ready = client.get("/readyz")
    assert ready.status_code == 200  # questions are still answered
    reason = ready.json()["checks"]["sandbox"]["reason"]
    assert reason == ("Demo runs are disabled: the sandbox interpreter <path> does not exist: "
                      "run `make sandbox-env` or set ASKTA_SANDBOX_PYTHON")
    healthz = client.get("/healthz").json()
    assert healthz["sandbox"]["reason"] == reason
    assert "/opt/" not in ready.text + client.get("/healthz").text


@pytest.mark.parametrize(("text", "public"), [
    ("cannot read /root (on the way to /root/.venv/bin/python); a seccomp/AppArmor profile",
     "cannot read <path> (on the way to <path>); a seccomp/AppArmor profile"),
    ("bwrap: Can't mount proc on /newroot/proc: Operation not permitted",
     "bwrap: Can't mount proc on <path>: Operation not permitted"),
    ("file '/srv/data/askta.db'.", "file '<path>'."),
    ("30/minute, https://sqlalche.me/e/20/e3q8, ./kb/x.yaml", None),
])
def test_public_reason(text: str, public: str | None) -> None:
    assert public_reason(text) == (public if public is not None else text)
    assert public_reason(None) is None


class _NoUsernsRunner:
    """A SandboxRunner stand-in whose check fails the way bwrap does in a default container."""

    def __init__(self, config: object) -> None:
        pass

    def check(self) -> None:
        raise SandboxUnavailable(
            "bwrap cannot create a user namespace here: bwrap: Can't mount proc on "
            "/newroot/proc: Operation not permitted. Allow unprivileged user namespaces")


@pytest.fixture
def userns_refused(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setattr("server.services.SandboxRunner", _NoUsernsRunner)
    monkeypatch.setattr(services, "settings",
                        services.settings.model_copy(update={"sandbox_enabled": True}))
    services.start_sandbox()
    yield services


def test_a_user_namespace_refusal_names_the_container_options(
    userns_refused: Services, client: TestClient
) -> None:
    assert userns_refused.sandbox is None
    assert userns_refused.sandbox_error is not None
    assert userns_refused.sandbox_error.endswith(CONTAINER_USERNS_HINT)
    r = client.get("/readyz")
    assert r.status_code == 200
    reason = r.json()["checks"]["sandbox"]["reason"]
    for option in ("seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"):
        assert option in reason
    assert "/newroot" not in reason and "docs/operations.md" in reason
