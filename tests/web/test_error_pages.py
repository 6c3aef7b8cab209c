"""One error path, two renderings: HTML pages for browsers, the JSON shape for the API."""

from __future__ import annotations

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from server.accounts import Accounts
from server.services import Services
from server.web.app import create_app

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_unknown_url_in_a_browser_is_an_html_404_page(client: TestClient) -> None:
    r = client.get("/nope", headers=HTML)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in r.text and 'href="/"' in r.text
    assert "Content-Security-Policy" in r.headers
    assert '"error"' not in r.text


def test_unknown_url_for_a_script_is_json(client: TestClient) -> None:
    r = client.get("/nope", headers={"Accept": "application/json"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("accept", ["text/html", "application/json", "*/*"])
def test_the_api_always_answers_json(client: TestClient, accept: str) -> None:
    r = client.get("/api/nowhere", headers={"Accept": accept})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.get("/api/review", headers={"Accept": accept})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_staff_page_without_login_is_the_login_form(client: TestClient) -> None:
    r = client.get("/admin/stats", headers=HTML)
    assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
    assert 'action="/login"' in r.text and 'name="next" value="/admin/stats"' in r.text


def test_staff_page_with_the_wrong_role_is_an_html_403(client: TestClient,
                                                        services: Services) -> None:
    Accounts(services.store).add("tara", "ta", None)
    token = Accounts(services.store).issue_token("tara")
    r = client.get("/admin", headers={**HTML, "Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "<h1>Not allowed</h1>" in r.text and "instructor" in r.text
    assert "tara" in r.text  # the nav shows who is logged in


def test_unknown_entry_in_the_admin_is_an_html_404(client: TestClient,
                                                   services: Services) -> None:
    Accounts(services.store).add("ines", "instructor", None)
    token = Accounts(services.store).issue_token("ines")
    r = client.get("/admin/entries/no-such-entry",
                   headers={**HTML, "Authorization": f"Bearer {token}"})
    assert r.status_code == 404 and "no-such-entry" in r.text and "<h1>" in r.text


def test_a_crash_on_a_page_is_an_html_500_without_a_traceback(settings, services) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings, services=services)
    boom = APIRouter()

    @boom.get("/boom", include_in_schema=False)
    def explode() -> None:
        raise RuntimeError("secret /home/path detail")

    app.include_router(boom)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom", headers=HTML)
    assert r.status_code == 500 and r.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in r.text and "secret" not in r.text
    assert "Traceback" not in r.text
