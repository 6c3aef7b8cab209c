"""Fixtures of the run tests: the app with a fake sandbox runner that records the code it
is given (tests/web/test_routes_demos.py, FakeRunner)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page

from server.config import Settings
from server.services import Services
from server.web.app import create_app
from tests.live import watched_page
from tests.web.test_routes_demos import FakeRunner


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
def run_client(settings: Settings, services: Services, runner: FakeRunner
               ) -> Iterator[TestClient]:
    services.sandbox = runner  # type: ignore[assignment]
    with TestClient(create_app(settings, services=services)) as c:
        yield c


@pytest.fixture
def page(browser: Browser, live_server: tuple[str, Services],
         request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser page on the test module's own `live_server` (see watched_page)."""
    with watched_page(browser, live_server[0], request) as pg:
        yield pg
