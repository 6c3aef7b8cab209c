"""Shared fixtures: every test builds its own knowledge base, settings and app."""

from __future__ import annotations

import shutil
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
