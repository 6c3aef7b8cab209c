"""Fixtures of the run tests: the app with a fake sandbox runner that records the code it
is given (tests/web/test_routes_demos.py, FakeRunner)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from server.config import Settings
from server.services import Services
from server.web.app import create_app
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
