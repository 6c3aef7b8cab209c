"""Who may do what: passwords, sessions with CSRF, bearer tokens, and every protected route."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from server.accounts import Accounts, hash_password, token_hash, verify_password
from server.cli.users import user_group
from server.config import Settings
from server.services import Services
from server.web.sessions import LOGIN_CSRF_COOKIE, SESSION_COOKIE, secret_key
from tests.store.readback import audit_log

# (method, path, minimum role). Every staff route of the app must be listed here.
PROTECTED = [
    ("GET", "/api/review", "ta"),
    ("GET", "/api/review/{review_id}", "ta"),
    ("POST", "/api/review/{review_id}/link", "ta"),
    ("POST", "/api/review/{review_id}/draft", "ta"),
    ("POST", "/api/review/{review_id}/dismiss", "ta"),
    ("POST", "/api/admin/preview", "ta"),
    ("GET", "/api/admin/stats", "ta"),
    ("POST", "/api/admin/demo/test", "instructor"),
    ("GET", "/review", "ta"),
    ("GET", "/admin/stats", "ta"),
    ("GET", "/admin", "instructor"),
    ("GET", "/admin/entries/new", "instructor"),
    ("POST", "/admin/entries/new", "instructor"),
    ("GET", "/admin/entries/{entry_id}", "instructor"),
    ("POST", "/admin/entries/{entry_id}", "instructor"),
    ("GET", "/api/admin/entries", "instructor"),
    ("GET", "/api/admin/entries/{entry_id}", "instructor"),
    ("PUT", "/api/entries/{entry_id}", "instructor"),
    ("DELETE", "/api/entries/{entry_id}", "instructor"),
    ("GET", "/admin/entries/{entry_id}/history", "instructor"),
    ("POST", "/admin/entries/{entry_id}/history/{sha}/revert", "instructor"),
]
# Writes to /api/entries are staff routes too (reading published entries is public).
STAFF_WRITES = {("PUT", "/api/entries/{entry_id}"), ("DELETE", "/api/entries/{entry_id}")}
BODIES = {
    "/api/review/{review_id}/link": {"entry_id": "why-nonlinearities"},
    "/api/review/{review_id}/draft": {"id": "x-y", "question": "What?"},
    "/api/review/{review_id}/dismiss": {"reason": "off-topic"},
    "/api/admin/preview": {"markdown": "*hi*"},
    "/api/admin/demo/test": {"demo": "demos/classifier_prototypes.py"},
}


def _url(path: str, review_id: str) -> str:
    return path.replace("{review_id}", review_id).replace("{entry_id}", "why-nonlinearities") \
        .replace("{sha}", "0" * 40)


def _call(client: TestClient, method: str, path: str, review_id: str,
          headers: dict[str, str] | None = None) -> int:
    url = _url(path, review_id)
    if method == "GET":
        return client.get(url, headers=headers).status_code
    if method == "PUT":
        return client.put(url, json={"question": "x"}, headers=headers).status_code
    if method == "DELETE":
        return client.delete(url, headers=headers).status_code
    if path.startswith("/admin"):
        return client.post(url, data={"question": "x"}, headers=headers).status_code
    return client.post(url, json=BODIES[path], headers=headers).status_code


def bearer(services: Services, name: str, role: str) -> dict[str, str]:
    accounts = Accounts(services.store)
    accounts.add(name, role, None)
    return {"Authorization": f"Bearer {accounts.issue_token(name)}"}


def login(client: TestClient, services: Services, name: str = "tara", role: str = "ta",
          password: str = "correct horse") -> str:
    """Log in through the form; return the session's CSRF token (from the review page)."""
    Accounts(services.store).add(name, role, password)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"name": name, "password": password, "csrf_token": token,
                                    "next": "/review"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/review"
    review = client.get("/review")
    assert review.status_code == 200
    return re.search(r'name="csrf-token" content="([^"]+)"', review.text).group(1)  # type: ignore[union-attr]


# --- the library -------------------------------------------------------------------------
def test_passwords_are_argon2_hashes() -> None:
    h = hash_password("s3cret")
    assert h.startswith("$argon2") and "s3cret" not in h
    assert verify_password("s3cret", h) and not verify_password("wrong", h)
    assert not verify_password("x", None) and not verify_password("x", "garbage")


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", kb_dir=tmp_path)
    key = secret_key(settings)
    assert len(key) > 40 and secret_key(settings) == key
    assert (tmp_path / "d" / "secret_key").stat().st_mode & 0o777 == 0o600
    given = "g" * 32
    assert secret_key(settings.model_copy(update={"secret_key": given})) == given


def test_tokens_are_stored_hashed(services: Services) -> None:
    accounts = Accounts(services.store)
    accounts.add("tara", "ta", None)
    token = accounts.issue_token("tara")
    user = services.store.user("tara")
    assert user is not None and user.token_hash == token_hash(token) != token
    assert accounts.from_token(token).name == "tara"  # type: ignore[union-attr]
    newer = accounts.issue_token("tara")
    assert accounts.from_token(token) is None and accounts.from_token(newer) is not None


# --- every protected route ---------------------------------------------------------------
def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, also inside included routers (newer FastAPI wraps them)."""
    out: list[APIRoute] = []
    for r in routes:
        if isinstance(r, APIRoute):
            out.append(r)
        inner = getattr(r, "original_router", None) or getattr(r, "router", None)
        if inner is not None and hasattr(inner, "routes"):
            out.extend(_api_routes(inner.routes))
    return out


def test_every_staff_route_is_covered(client: TestClient) -> None:
    staff_routes = {
        (m, r.path) for r in _api_routes(client.app.routes)  # type: ignore[attr-defined]
        for m in r.methods
        if r.path.startswith(("/api/review", "/api/admin", "/admin", "/review"))
        or (m, r.path) in STAFF_WRITES or (r.path.startswith("/api/entries")
                                           and m not in ("GET", "HEAD", "POST"))
    }
    assert staff_routes == {(m, p) for m, p, _ in PROTECTED}


@pytest.mark.parametrize(("method", "path", "role"), PROTECTED)
def test_401_without_credentials(client: TestClient, services: Services, method: str,
                                 path: str, role: str) -> None:
    rid = services.store.open_review_item(None, "q", reason="unanswered", suggestions=[])
    assert _call(client, method, path, rid) == 401
    assert _call(client, method, path, rid, {"Authorization": "Bearer askta_nope"}) == 401
    assert _call(client, method, path, rid, {"Authorization": "Basic dTpw"}) == 401


@pytest.mark.parametrize(("method", "path", "role"), PROTECTED)
def test_403_with_the_wrong_role(client: TestClient, services: Services, method: str,
                                 path: str, role: str) -> None:
    rid = services.store.open_review_item(None, "q", reason="unanswered", suggestions=[])
    if role == "instructor":
        headers = bearer(services, "tara", "ta")
    else:  # an account whose staff role was withdrawn (a TA from last term)
        headers = bearer(services, "old", "ta")
        services.store.update_user("old", role="alumni")
    assert _call(client, method, path, rid, headers) == 403


def test_api_errors_have_the_one_shape(client: TestClient, services: Services) -> None:
    r = client.get("/api/review")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = client.post("/api/admin/demo/test", json={"demo": "demos/x.py"},
                    headers=bearer(services, "tara", "ta"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_pages_without_login_show_the_login_form(client: TestClient) -> None:
    r = client.get("/review")
    assert r.status_code == 401 and 'action="/login"' in r.text
    assert 'name="next" value="/review"' in r.text


def test_page_with_the_wrong_role_says_so(client: TestClient, services: Services) -> None:
    r = client.get("/admin", headers=bearer(services, "tara", "ta"))
    assert r.status_code == 403 and "instructor" in r.text and 'action="/login"' not in r.text


# --- sessions and CSRF -------------------------------------------------------------------
def test_login_session_and_csrf(client: TestClient, services: Services) -> None:
    csrf = login(client, services)
    assert client.get("/api/review").status_code == 200
    rid = services.store.open_review_item(None, "q", reason="unanswered", suggestions=[])
    url = f"/api/review/{rid}/dismiss"
    r = client.post(url, json={"reason": "off-topic"})
    assert r.status_code == 403 and "CSRF" in r.json()["error"]["message"]
    r = client.post(url, json={"reason": "off-topic"}, headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    r = client.post(url, json={"reason": "off-topic"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    assert services.store.review_item(rid).resolved_by == "tara"
    assert any(e.action == "login" and e.actor == "tara" for e in audit_log(services.store))


def test_wrong_password(client: TestClient, services: Services) -> None:
    Accounts(services.store).add("tara", "ta", "the right password")
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"name": "tara", "password": "wrong", "csrf_token": token})
    assert r.status_code == 401 and "Wrong name or password" in r.text
    assert SESSION_COOKIE not in client.cookies
    r = client.post("/login", data={"name": "nobody", "password": "x", "csrf_token": token})
    assert r.status_code == 401


def test_login_form_needs_its_csrf_token(client: TestClient, services: Services) -> None:
    Accounts(services.store).add("tara", "ta", "the right password")
    client.get("/login")
    assert LOGIN_CSRF_COOKIE in client.cookies
    r = client.post("/login", data={"name": "tara", "password": "the right password",
                                    "csrf_token": "x"})
    assert r.status_code == 403 and SESSION_COOKIE not in client.cookies


def test_login_never_redirects_off_site(client: TestClient, services: Services) -> None:
    Accounts(services.store).add("tara", "ta", "correct horse")
    page = client.get("/login?next=//evil.example/x")
    assert 'value="/review"' in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"name": "tara", "password": "correct horse",
                                    "csrf_token": token, "next": "https://evil.example"},
                    follow_redirects=False)
    assert r.headers["location"] == "/review"


def test_tampered_session_is_anonymous(client: TestClient, services: Services) -> None:
    login(client, services)
    value = client.cookies[SESSION_COOKIE]
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, value[:-3] + ("AAA" if value[-3:] != "AAA" else "BBB"))
    assert client.get("/api/review").status_code == 401
    forged = value.replace(value.split(".")[0], "eyJ1IjoiaWFuIiwiYyI6IngifQ")  # {"u":"ian",...}
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, forged)
    assert client.get("/api/review").status_code == 401


def test_stale_session_is_anonymous(client: TestClient, services: Services) -> None:
    login(client, services)
    services.sessions.max_age = -1  # every signature is now too old
    assert client.get("/api/review").status_code == 401


def test_deleted_user_loses_access(client: TestClient, services: Services) -> None:
    login(client, services)
    with services.store.writing() as s:
        from sqlalchemy import delete

        from server.store import User

        s.execute(delete(User).where(User.name == "tara"))
    assert client.get("/api/review").status_code == 401


def test_logout(client: TestClient, services: Services) -> None:
    csrf = login(client, services)
    r = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/api/review").status_code == 401


def test_session_cookie_flags(client: TestClient, services: Services) -> None:
    Accounts(services.store).add("tara", "ta", "correct horse")
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"name": "tara", "password": "correct horse",
                                    "csrf_token": token},
                    follow_redirects=False)
    cookie = next(v for k, v in r.headers.multi_items()
                  if k == "set-cookie" and v.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie


# --- the CLI -----------------------------------------------------------------------------
def test_user_cli(tmp_path: Path) -> None:
    settings = Settings(kb_dir=tmp_path, data_dir=tmp_path / "data")
    runner = CliRunner()
    obj = {"settings": settings}
    stdin = ["--password-stdin"]
    r = runner.invoke(user_group, ["add", "tara", "--role", "ta", *stdin], obj=obj,
                      input="correct horse\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(user_group, ["add", "ian", "--role", "instructor"], obj=obj,
                      input="battery staple\nbattery staple\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(user_group, ["add", "tara", "--role", "ta", *stdin], obj=obj,
                      input="another password\n")
    assert r.exit_code == 1 and "already exists" in r.output
    r = runner.invoke(user_group, ["add", "x", "--role", "student", *stdin], obj=obj,
                      input="another password\n")
    assert r.exit_code == 2
    r = runner.invoke(user_group, ["token", "tara"], obj=obj)
    assert r.exit_code == 0
    token = r.output.strip().splitlines()[-1]
    assert token.startswith("askta_")
    r = runner.invoke(user_group, ["token", "nobody"], obj=obj)
    assert r.exit_code == 1 and "no user named" in r.output
    r = runner.invoke(user_group, ["list", "--json"], obj=obj)
    import json

    rows = json.loads(r.output)
    assert [(u["name"], u["role"], u["token"]) for u in rows] == [("ian", "instructor", False),
                                                                  ("tara", "ta", True)]
    r = runner.invoke(user_group, ["list"], obj=obj)
    assert "tara" in r.output and "instructor" in r.output

    from server.store import Store

    store = Store(settings.db_url)
    accounts = Accounts(store)
    assert accounts.login("ian", "battery staple") is not None
    assert accounts.from_token(token).name == "tara"  # type: ignore[union-attr]
    store.close()
