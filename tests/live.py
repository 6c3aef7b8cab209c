"""A live server and a headless Chromium, shared by the browser tests."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

from server.config import Settings
from server.services import Services
from server.web.app import create_app

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling out, which this
# machine's closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
TIMEOUT_MS = 60_000  # generous: CI machines may be busy


def copy_project(root: Path) -> Path:
    """A private copy of the bundled kb/ and demos/ under root; returns the kb folder."""
    shutil.copytree(REPO / "kb", root / "kb")
    shutil.copytree(REPO / "demos", root / "demos")
    return root / "kb"


def live_settings(root: Path, **changes: Any) -> Settings:
    """Settings for a live server in `root`: its own copy of kb/ and demos/ and its own
    data dir, no rate limits, a fixed session key; `changes` on top."""
    return Settings(**{"kb_dir": copy_project(root), "data_dir": root / "data",
                       "chat_rate_limit": "off", "demo_rate_limit": "off",
                       "secret_key": "live-browser-tests-secret-key-32-characters", **changes})


@contextmanager
def serve(settings: Settings, services: Services, **options: Any) -> Iterator[str]:
    """The app served by uvicorn in a thread on a free loopback port; yields its base URL.
    `options` go to uvicorn's Config (proxy_headers, forwarded_allow_ips)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, services=services),
                                           log_level="warning", lifespan="on", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        services.close()
        sock.close()


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless (make test installs the package)."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(pages: list[Page], name: str) -> None:
    """Keep what the pages showed when a test failed, in test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    for i, page in enumerate(pages):
        suffix = f"-{i}" if len(pages) > 1 else ""
        page.screenshot(path=str(ARTIFACTS / f"{name}{suffix}.png"), full_page=True)


@contextmanager
def watched_page(browser: Browser, base_url: str,
                 request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page on `base_url`: JavaScript errors fail the test, and a screenshot is
    kept when the test fails. For the browser tests' `page` fixtures."""
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    failed_before = request.session.testsfailed
    yield page
    if request.session.testsfailed > failed_before:
        screenshot([page], request.node.name)
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
