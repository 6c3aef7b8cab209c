"""Shared fixtures: every test builds its own knowledge base, settings and app."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser

from indexer.embedders import HashingEmbedder, SentenceTransformerEmbedder
from server.config import Settings
from server.services import Services
from server.web.app import create_app

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    """A private copy of the bundled kb/ and demos/, safe to modify."""
    shutil.copytree(REPO / "kb", tmp_path / "kb")
    shutil.copytree(REPO / "demos", tmp_path / "demos")
    return tmp_path / "kb"


@pytest.fixture
def settings(tmp_path: Path, kb_dir: Path) -> Settings:
    """Settings pointed at temporary folders; no rate limits, no sandbox."""
    return Settings(
        kb_dir=kb_dir,
        data_dir=tmp_path / "data",
        model="hashing",
        chat_rate_limit="off",
        demo_rate_limit="off",
        sandbox_enabled=False,
        secret_key="test-secret-key-of-at-least-32-characters",
    )


@pytest.fixture
def fake_embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture(scope="session")
def real_embedder() -> SentenceTransformerEmbedder:
    """The bundled MiniLM model, loaded once for the whole run."""
    return SentenceTransformerEmbedder()


@pytest.fixture
def services(settings: Settings, fake_embedder: HashingEmbedder) -> Iterator[Services]:
    """Services with the fast fake embedder and no sandbox."""
    svc = Services.start(settings, embedder=fake_embedder)
    yield svc
    svc.close()


@pytest.fixture
def client(settings: Settings, services: Services) -> Iterator[TestClient]:
    """A TestClient over a fresh app."""
    with TestClient(create_app(settings, services=services)) as c:
        yield c


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium, one per browser-test module."""
    from tests.live import chromium

    with chromium() as b:
        yield b


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: the one `.ci/redis.sh` started (ASKTA_TEST_REDIS_URL), else a private
    `redis-server` (Debian's package, installed by `make test`) on a free loopback port,
    without persistence. Yields its URL with no database number."""
    url = os.environ.get("ASKTA_TEST_REDIS_URL", "")
    if url:
        yield url.rsplit("/", 1)[0] if url.count("/") > 2 else url
        return
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: `make test` installs it (Debian's redis-server)"
    folder = tmp_path_factory.mktemp("redis")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--dir",
                             str(folder), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


_redis_dbs = itertools.cycle(range(1, 16))


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A Redis database of its own for one test (flushed before and after)."""
    import redis

    url = f"{redis_server}/{next(_redis_dbs)}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
