"""Attacks that once worked, each replayed against the server: forged sessions, password
guessing, spoofed client addresses, feedback spam and probing, cross-site logout, readable
data files, sessions and tokens that outlived a logout, a new password or a disabled
account, and short passwords."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from starlette.requests import Request

import server.accounts
from server.accounts import Accounts
from server.config import Settings
from server.services import Services
from server.web.app import create_app
from server.web.sessions import SESSION_COOKIE, SecretKeyError, secret_key
from tests.web.test_auth import login

ATTACKER = ("198.51.100.66", 40000)
COLLEAGUE = ("203.0.113.20", 40000)


@pytest.fixture(autouse=True)
def _keep_umask() -> Iterator[None]:
    """The server narrows the process umask; give the rest of the test run its own back."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


def _app(settings: Settings, services: Services, **changes: Any) -> Any:
    settings = settings.model_copy(update=changes)
    return create_app(settings, services=dataclasses.replace(services, settings=settings))


def _unset_and_restore(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Unset these variables now and restore them after the test (serve writes some)."""
    for name in names:
        monkeypatch.setenv(name, "")  # records the value before, even "not set"
        monkeypatch.delenv(name)


def _keyless(settings: Settings) -> Settings:
    """The settings with no ASKTA_SECRET_KEY: the key comes from the data dir."""
    return settings.model_copy(update={"secret_key": None})


# --- 1. the session key ------------------------------------------------------------------
@pytest.mark.parametrize("content", ["", "\n", "   \n", "too-short-to-sign-with\n"])
def test_a_blank_or_short_key_file_stops_start_up(settings: Settings, content: str) -> None:
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "secret_key").write_text(content)
    with pytest.raises(SecretKeyError, match="at least 32") as e:
        secret_key(_keyless(settings))
    assert str(settings.data_dir / "secret_key") in str(e.value)
    assert "delete" in str(e.value)  # says how to recover


@pytest.mark.parametrize("how", ["not-utf8", "a-folder", "a-dangling-link"])
def test_an_unreadable_key_file_stops_start_up(settings: Settings, how: str) -> None:
    settings.data_dir.mkdir(parents=True)
    path = settings.data_dir / "secret_key"
    if how == "not-utf8":
        path.write_bytes(b"\xff\xfe" * 32)
    elif how == "a-folder":
        path.mkdir()
    else:
        path.symlink_to(settings.data_dir / "gone")
    with pytest.raises(SecretKeyError, match="cannot read the session key") as e:
        secret_key(_keyless(settings))
    assert str(path) in str(e.value)
    assert not (settings.data_dir / "gone").exists()  # no key written through the link


@pytest.mark.parametrize("value", ["a", "x" * 31, " " * 40])
def test_a_short_secret_key_setting_stops_start_up(tmp_path: Path, value: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASKTA_SECRET_KEY", value)
    settings = Settings(kb_dir=tmp_path, data_dir=tmp_path / "data")
    with pytest.raises(SecretKeyError, match="ASKTA_SECRET_KEY.*at least 32"):
        secret_key(settings)
    assert not (tmp_path / "data" / "secret_key").exists()  # no silent fallback to a file


def _race_for_the_key(data_dir: str, barrier: Any, keys: Any) -> None:
    barrier.wait()
    keys.put(secret_key(Settings(kb_dir=Path(data_dir), data_dir=Path(data_dir))))


def _assert_one_private_key(data_dir: Path, keys: list[str]) -> None:
    assert len(set(keys)) == 1 and len(keys[0]) >= 32
    path = data_dir / "secret_key"
    assert path.read_text().strip() == keys[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in data_dir.iterdir()] == ["secret_key"]  # no temporary files left


def test_racing_processes_create_one_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    n = 6
    barrier, keys = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_race_for_the_key, args=(str(tmp_path / "d"), barrier, keys))
             for _ in range(n)]
    for p in procs:
        p.start()
    got = [keys.get(timeout=120) for _ in range(n)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    _assert_one_private_key(tmp_path / "d", got)


def test_racing_threads_create_one_key(tmp_path: Path) -> None:
    settings = Settings(kb_dir=tmp_path, data_dir=tmp_path / "d")
    n = 16
    barrier = threading.Barrier(n)
    got: list[str] = []

    def race() -> None:
        barrier.wait()
        got.append(secret_key(settings))

    threads = [threading.Thread(target=race) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == n
    _assert_one_private_key(tmp_path / "d", got)


def _forged_session(user: str, key: str) -> str:
    """A session cookie for `user` signed as the server would with `key`."""
    return URLSafeTimedSerializer(key, salt="askta-session").dumps({"u": user, "c": "x"})


def test_an_empty_key_file_cannot_be_used_to_forge_an_instructor_session(
        settings: Settings, fake_embedder: Any) -> None:
    """An empty key file (a crash while it was written) once let anyone sign a session with
    the key "": the server now refuses to start, and the recovery does not accept it."""
    settings = _keyless(settings)
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "secret_key").write_text("")
    with pytest.raises(SecretKeyError):
        Services.start(settings, embedder=fake_embedder)
    with pytest.raises(SecretKeyError), TestClient(create_app(settings)):
        pass  # the app's start-up fails: nothing is served

    (settings.data_dir / "secret_key").unlink()  # the recovery the error message names
    with TestClient(create_app(settings)) as c:
        Accounts(c.app.state.services.store).add("ian", "instructor", "battery staple")  # type: ignore[attr-defined]
        c.cookies.set(SESSION_COOKIE, _forged_session("ian", ""))
        r = c.get("/admin")
        assert r.status_code == 401 and 'action="/login"' in r.text
        assert c.get("/api/review").status_code == 401


@pytest.mark.parametrize("where", ["file", "env"])
@pytest.mark.parametrize("command", ["serve", "check"])
def test_serve_and_check_explain_a_bad_key(settings: Settings, command: str, where: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from server.cli.main import cli

    started: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append((a, k)))
    _unset_and_restore(monkeypatch, "ASKTA_SECRET_KEY", "ASKTA_KB_DIR", "ASKTA_DATA_DIR",
                       "ASKTA_MODEL")
    settings.data_dir.mkdir(parents=True)
    if where == "file":
        (settings.data_dir / "secret_key").write_text("\n")
    else:
        monkeypatch.setenv("ASKTA_SECRET_KEY", "a")
    r = CliRunner().invoke(cli, ["--kb", str(settings.kb_dir), "--data-dir",
                                 str(settings.data_dir), command])
    assert r.exit_code == 4, r.output
    assert "session key" in r.output and "at least 32" in r.output
    assert "Traceback" not in r.output and not started
    assert r.exception is None or isinstance(r.exception, SystemExit)


# --- 2. password guessing ----------------------------------------------------------------
def _login_token(c: TestClient) -> str:
    page = c.get("/login")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def _try(c: TestClient, name: str, password: str, token: str) -> Any:
    return c.post("/login", data={"name": name, "password": password, "csrf_token": token,
                                  "next": "/review"}, follow_redirects=False)


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password check (each one an argon2 hash), by the password tried."""
    seen: list[str] = []
    real = server.accounts.verify_password

    def counting(password: str, password_hash: str | None) -> bool:
        seen.append(password)
        return real(password, password_hash)

    monkeypatch.setattr(server.accounts, "verify_password", counting)
    return seen


def test_guessing_one_password_is_throttled_before_hashing(
        settings: Settings, services: Services, hashes: list[str]) -> None:
    Accounts(services.store).add("tara", "ta", "correct horse")
    Accounts(services.store).add("ian", "instructor", "battery staple")
    app = _app(settings, services, login_rate_limit="5/minute", login_ip_rate_limit="off")
    with TestClient(app, client=ATTACKER) as attacker:
        token = _login_token(attacker)
        codes = [_try(attacker, "tara", f"guess-{i}", token).status_code for i in range(80)]
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
        assert len(hashes) == 5  # the 75 refused guesses were never hashed
        r = _try(attacker, " TARA ", "guess", token)  # the same account, spelled otherwise
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert "Too many login attempts" in r.text and 'action="/login"' in r.text
        assert SESSION_COOKIE not in attacker.cookies
    with TestClient(app, client=COLLEAGUE) as colleague:  # another account, another address
        token = _login_token(colleague)
        assert _try(colleague, "ian", "typo", token).status_code == 401
        assert _try(colleague, "ian", "battery staple", token).status_code == 303
        # the attacked account stays locked whoever asks: the guesses were against it
        token = _login_token(colleague)  # a login ends the login form's token
        assert _try(colleague, "tara", "correct horse", token).status_code == 429


def test_one_address_guessing_many_accounts_is_throttled(
        settings: Settings, services: Services, hashes: list[str]) -> None:
    app = _app(settings, services, login_rate_limit="off", login_ip_rate_limit="10/minute")
    with TestClient(app, client=ATTACKER) as attacker:
        token = _login_token(attacker)
        codes = [_try(attacker, f"user{i}", "password1", token).status_code for i in range(40)]
        assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}
        assert len(hashes) == 10
    Accounts(services.store).add("ian", "instructor", "battery staple")
    with TestClient(app, client=COLLEAGUE) as colleague:
        assert _try(colleague, "ian", "battery staple", _login_token(colleague)).status_code == 303


def test_the_right_password_works_once_the_lockout_ends_and_lockouts_grow(
        settings: Settings, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small windows of real time; a fast stand-in for argon2 keeps the attempts close."""
    monkeypatch.setattr(server.accounts, "verify_password",
                        lambda password, _hash: password == "correct horse")
    Accounts(services.store).add("tara", "ta", "correct horse")
    app = _app(settings, services, login_rate_limit="2/second;3/3 seconds",
               login_ip_rate_limit="off")
    with TestClient(app, client=ATTACKER) as c:
        token = _login_token(c)
        assert [_try(c, "tara", "x", token).status_code for _ in range(2)] == [401, 401]
        first = _try(c, "tara", "correct horse", token)
        assert first.status_code == 429 and int(first.headers["Retry-After"]) == 1
        time.sleep(1.1)
        assert _try(c, "tara", "x", token).status_code == 401  # the second tier's last try
        second = _try(c, "tara", "correct horse", token)
        assert second.status_code == 429
        assert int(second.headers["Retry-After"]) > int(first.headers["Retry-After"])
        time.sleep(int(second.headers["Retry-After"]) + 0.1)
        assert _try(c, "tara", "correct horse", token).status_code == 303


def test_a_successful_login_forgets_the_accounts_failures(
        settings: Settings, services: Services) -> None:
    Accounts(services.store).add("tara", "ta", "correct horse")
    app = _app(settings, services, login_rate_limit="3/minute", login_ip_rate_limit="off")
    with TestClient(app, client=COLLEAGUE) as c:
        token = _login_token(c)
        assert [_try(c, "tara", "typo", token).status_code for _ in range(2)] == [401, 401]
        assert _try(c, "tara", "correct horse", token).status_code == 303
        c.cookies.delete(SESSION_COOKIE)
        token = _login_token(c)
        assert [_try(c, "tara", "typo", token).status_code for _ in range(3)] == [401] * 3
        assert _try(c, "tara", "typo", token).status_code == 429


def test_password_hashing_runs_at_most_n_at_once(
        settings: Settings, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of logins waits for a few hashing slots instead of taking every core."""
    lock, running, peak = threading.Lock(), [0], [0]

    def slow_check(password: str, password_hash: str | None) -> bool:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.15)
        with lock:
            running[0] -= 1
        return False

    monkeypatch.setattr(server.accounts, "verify_password", slow_check)
    app = _app(settings, services, login_rate_limit="off", login_ip_rate_limit="off",
               login_hash_concurrency=2, login_hash_wait_s=10.0)
    with TestClient(app, client=ATTACKER) as c:
        token = _login_token(c)
        codes: list[int] = []
        threads = [threading.Thread(target=lambda i=i: codes.append(
            _try(c, f"user{i}", "pw", token).status_code)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(codes) == [401] * 8 and peak[0] == 2

    app = _app(settings, services, login_rate_limit="off", login_ip_rate_limit="off",
               login_hash_concurrency=1, login_hash_wait_s=0.05)
    with TestClient(app, client=ATTACKER) as c:
        token = _login_token(c)
        responses: list[Any] = []
        threads = [threading.Thread(target=lambda i=i: responses.append(
            _try(c, f"user{i}", "pw", token))) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        busy = [r for r in responses if r.status_code == 503]
        assert busy and all(r.headers["Retry-After"] == "1" for r in busy)
        assert "try again" in busy[0].text


# --- 3. who is asking --------------------------------------------------------------------
def _ask(c: TestClient, forwarded: str) -> int:
    return c.post("/api/chat", json={"message": "why relu"},
                  headers={"X-Forwarded-For": forwarded}).status_code


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(
        settings: Settings, services: Services) -> None:
    app = _app(settings, services, chat_rate_limit="30/minute")
    with TestClient(app, client=("127.0.0.1", 5000)) as c:
        codes = [_ask(c, f"192.0.2.{i}") for i in range(35)]
    assert codes[:30] == [200] * 30 and set(codes[30:]) == {429}


def test_client_written_hops_are_ignored_behind_a_trusted_proxy(
        settings: Settings, services: Services) -> None:
    """The proxy appends the address it saw: every hop left of it is the client's to write."""
    app = _app(settings, services, chat_rate_limit="30/minute", trust_proxy_headers=True)
    with TestClient(app, client=("127.0.0.1", 5000)) as c:
        codes = [_ask(c, f"192.0.2.{i}, 203.0.113.7") for i in range(35)]
        assert codes[:30] == [200] * 30 and set(codes[30:]) == {429}
        assert _ask(c, "203.0.113.7, 203.0.113.8") == 200  # another client behind the proxy
    # a client talking to the server directly cannot claim an address at all
    with TestClient(app, client=ATTACKER) as c:
        codes = [_ask(c, f"192.0.2.{i}") for i in range(35)]
        assert set(codes[30:]) == {429}


def _request(peer: str, forwarded: list[str], **changes: Any) -> Request:
    settings = Settings(**changes)
    app = type("App", (), {"state": type("State", (), {"settings": settings})()})()
    headers = [(b"x-forwarded-for", v.encode()) for v in forwarded]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers,
                    "client": (peer, 1), "app": app})


@pytest.mark.parametrize(("peer", "forwarded", "changes", "expected"), [
    ("127.0.0.1", ["192.0.2.1"], {}, "127.0.0.1"),
    ("198.51.100.9", ["192.0.2.1"], {"trust_proxy_headers": True}, "198.51.100.9"),
    ("127.0.0.1", ["192.0.2.1, 203.0.113.7"], {"trust_proxy_headers": True}, "203.0.113.7"),
    ("127.0.0.1", ["192.0.2.1", "203.0.113.7"], {"trust_proxy_headers": True}, "203.0.113.7"),
    ("127.0.0.1", [], {"trust_proxy_headers": True}, "127.0.0.1"),
    ("10.0.0.2", ["192.0.2.1, 203.0.113.7, 10.1.2.3"],
     {"trust_proxy_headers": True, "trusted_proxies": "127.0.0.1, 10.0.0.0/8"}, "203.0.113.7"),
    ("10.0.0.2", ["10.0.0.9, 10.1.2.3"],
     {"trust_proxy_headers": True, "trusted_proxies": "10.0.0.0/8"}, "10.0.0.9"),
    ("::1", ["192.0.2.1, 2001:db8::7"],
     {"trust_proxy_headers": True, "trusted_proxies": "::1"}, "2001:db8::7"),
])
def test_client_id_takes_the_rightmost_untrusted_hop(peer: str, forwarded: list[str],
                                                     changes: dict[str, Any],
                                                     expected: str) -> None:
    from server.web.clients import client_id

    assert client_id(_request(peer, forwarded, **changes)) == expected


def _serve(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> dict[str, Any]:
    import uvicorn

    from server.cli.serve import serve

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: calls.append(k))
    _unset_and_restore(monkeypatch, "ASKTA_KB_DIR", "ASKTA_DATA_DIR", "ASKTA_MODEL")
    r = CliRunner().invoke(serve, list(args), obj={"settings": settings})
    assert r.exit_code == 0, r.output
    assert len(calls) == 1
    return calls[0]


def test_serve_leaves_uvicorns_proxy_headers_off_by_default(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = _serve(settings, monkeypatch)
    assert kwargs["proxy_headers"] is False and "forwarded_allow_ips" not in kwargs
    trusted = settings.model_copy(update={"trust_proxy_headers": True,
                                          "trusted_proxies": "10.0.0.0/8"})
    kwargs = _serve(trusted, monkeypatch)
    assert kwargs["proxy_headers"] is True and kwargs["forwarded_allow_ips"] == "10.0.0.0/8"


def _through_uvicorn(settings: Settings, services: Services, monkeypatch: pytest.MonkeyPatch,
                     **changes: Any) -> Any:
    """The app behind a real uvicorn, given the proxy options `askta serve` passes it for
    these settings: uvicorn's own X-Forwarded-For handling is part of what is tested."""
    from tests.live import serve

    settings = settings.model_copy(update=changes)
    kwargs = _serve(settings, monkeypatch)
    proxy = {k: kwargs[k] for k in ("proxy_headers", "forwarded_allow_ips") if k in kwargs}
    return serve(settings, dataclasses.replace(services, settings=settings), **proxy)


def _spoofing(url: str, hops: list[str]) -> list[tuple[int, int]]:
    """(chat, demo run) status for each X-Forwarded-For value, sent from 127.0.0.1."""
    import httpx

    codes = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for hop in hops:
            headers = {"X-Forwarded-For": hop}
            chat = c.post("/api/chat", json={"message": "why relu"}, headers=headers)
            run = c.post("/api/entries/why-nonlinearities/demo/run", json={}, headers=headers)
            codes.append((chat.status_code, run.status_code))
    return codes


LIMITS = {"chat_rate_limit": "3/minute", "demo_rate_limit": "3/minute"}
ALLOWED = (200, 503)  # a question answered; a demo run counted, then refused (no sandbox)
LIMITED = (429, 429)


def test_uvicorn_does_not_take_spoofed_addresses_from_loopback(
        settings: Settings, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: `askta serve` left uvicorn's proxy_headers on, which trusts 127.0.0.1 and
    rewrote the client to whatever X-Forwarded-For said: every spoofed address got its
    own chat and demo-run allowance."""
    with _through_uvicorn(settings, services, monkeypatch, **LIMITS) as url:
        codes = _spoofing(url, [f"192.0.2.{i}" for i in range(6)])
    assert codes == [ALLOWED] * 3 + [LIMITED] * 3


def test_uvicorn_behind_a_trusted_proxy_uses_the_hop_the_proxy_added(
        settings: Settings, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind the proxy (127.0.0.1 here) the client may still write hops of its own in
    front of the one the proxy appends: they change nothing."""
    with _through_uvicorn(settings, services, monkeypatch, trust_proxy_headers=True,
                          **LIMITS) as url:
        codes = _spoofing(url, [f"192.0.2.{i}, 203.0.113.7" for i in range(6)])
        assert codes == [ALLOWED] * 3 + [LIMITED] * 3
        assert _spoofing(url, ["192.0.2.1, 203.0.113.8"]) == [ALLOWED]  # another client


# --- 4. feedback, logout and the data dir ------------------------------------------------
def _feedback(c: TestClient, entry_id: str, helpful: bool = True) -> Any:
    return c.post("/api/feedback", json={"message": "why relu", "entry_id": entry_id,
                                         "helpful": helpful})


def test_feedback_is_rate_limited(settings: Settings, services: Services) -> None:
    with TestClient(_app(settings, services, feedback_rate_limit="3/minute")) as c:
        codes = [_feedback(c, "why-nonlinearities", helpful=False).status_code
                 for _ in range(10)]
        assert codes == [200] * 3 + [429] * 7
    assert _feedback_rows(services) == 3


def _feedback_rows(services: Services) -> int:
    from sqlalchemy import func, select

    from server.store import Feedback

    with services.store.reading() as s:
        return int(s.scalar(select(func.count()).select_from(Feedback)) or 0)


def test_feedback_on_an_unpublished_entry_is_not_found_like_an_unknown_one(
        client: TestClient, services: Services) -> None:
    unpublished = services.kb.unanswered()[0].id
    hidden, unknown = _feedback(client, unpublished), _feedback(client, "no-such-entry")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"]["message"].replace(unpublished, "X") == \
        unknown.json()["error"]["message"].replace("no-such-entry", "X")
    assert _feedback_rows(services) == 0


def test_a_cross_site_post_cannot_log_staff_out(client: TestClient,
                                                services: Services) -> None:
    csrf = login(client, services)
    r = client.post("/logout", follow_redirects=False)  # what another site's form can send
    assert r.status_code == 403
    r = client.post("/logout", data={"csrf_token": "forged"}, follow_redirects=False)
    assert r.status_code == 403
    assert client.get("/api/review").status_code == 200  # still logged in
    r = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and client.get("/api/review").status_code == 401


def test_a_stale_session_can_always_log_out(client: TestClient, services: Services) -> None:
    login(client, services)
    services.sessions.max_age = -1  # the session expired while the page was open
    r = client.post("/logout", follow_redirects=False)
    assert r.status_code == 303 and SESSION_COOKIE not in client.cookies


def test_the_data_dir_and_its_files_are_private(settings: Settings) -> None:
    settings = _keyless(settings)
    with TestClient(create_app(settings)) as c:
        assert c.get("/healthz").status_code == 200
        data = settings.data_dir
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert (data / "askta.db-wal").exists()  # the log, the users' hashes, the WAL
        for name in ("askta.db", "askta.db-wal", "secret_key"):
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name


def test_files_left_readable_are_made_private_at_start(settings: Settings) -> None:
    """A data dir from before the fix: 0755, its database, WAL and key 0644."""
    settings = _keyless(settings)
    with TestClient(create_app(settings)) as c:
        assert c.get("/healthz").status_code == 200
    data = settings.data_dir
    data.chmod(0o755)
    for path in data.iterdir():
        path.chmod(0o755 if path.is_dir() else 0o644)
    (data / "askta.db-wal").touch(0o644)
    os.umask(0o022)
    with TestClient(create_app(settings)) as c:
        assert c.get("/healthz").status_code == 200
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for path in data.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path.name
        assert stat.S_IMODE((data / "askta.db").stat().st_mode) == 0o600


def test_adding_the_first_user_creates_a_private_database(settings: Settings) -> None:
    """`askta user add` often runs before the server ever started: the database it
    creates holds the password hashes (once 0644 in a 0755 folder)."""
    from server.cli.users import user_group

    os.umask(0o022)
    r = CliRunner().invoke(user_group, ["add", "tara", "--role", "ta", "--password-stdin"],
                           obj={"settings": settings}, input="correct horse battery\n")
    assert r.exit_code == 0, r.output
    data = settings.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert [p.name for p in data.iterdir() if stat.S_IMODE(p.stat().st_mode) & 0o077] == []
    assert stat.S_IMODE((data / "askta.db").stat().st_mode) == 0o600
    assert os.umask(0o022) == 0o022  # the command gave the process its umask back


# --- 5. sessions and tokens end when the account says so ---------------------------------
def _log_in(c: TestClient, name: str = "tara", password: str = "correct horse") -> Any:
    return _try(c, name, password, _login_token(c))


def _replay(settings: Settings, services: Services, cookie: str) -> int:
    """What a session cookie copied earlier (a shared computer, a stolen laptop) gets now."""
    with TestClient(_app(settings, services), client=ATTACKER) as thief:
        thief.cookies.set(SESSION_COOKIE, cookie)
        return thief.get("/api/review").status_code


def test_a_session_cookie_copied_before_logout_stops_working(
        settings: Settings, client: TestClient, services: Services) -> None:
    csrf = login(client, services)
    copied = client.cookies[SESSION_COOKIE]
    assert _replay(settings, services, copied) == 200
    r = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert _replay(settings, services, copied) == 401
    assert _log_in(client).status_code == 303  # logging in again starts a new session
    assert client.get("/api/review").status_code == 200
    assert _replay(settings, services, copied) == 401


def test_logout_ends_the_users_other_sessions_too(
        settings: Settings, services: Services) -> None:
    Accounts(services.store).add("tara", "ta", "correct horse")
    with TestClient(_app(settings, services)) as laptop, \
            TestClient(_app(settings, services)) as phone:
        assert _log_in(laptop).status_code == _log_in(phone).status_code == 303
        review = laptop.get("/review")
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', review.text).group(1)  # type: ignore[union-attr]
        laptop.post("/logout", data={"csrf_token": csrf})
        assert phone.get("/api/review").status_code == 401


def test_a_stale_cookie_cannot_log_out_the_users_current_sessions(
        settings: Settings, client: TestClient, services: Services) -> None:
    """An old cookie (from before a password change) carries a valid CSRF token of its own:
    it is cleared, but the sessions started since stay."""
    login(client, services)
    old = client.cookies[SESSION_COOKIE]
    Accounts(services.store).set_password("tara", "a new passphrase")
    assert _log_in(client, password="a new passphrase").status_code == 303
    with TestClient(_app(settings, services)) as thief:
        thief.cookies.set(SESSION_COOKIE, old)
        csrf = URLSafeTimedSerializer(settings.secret_key or "", salt="askta-session").loads(
            old)["c"]
        assert thief.post("/logout", data={"csrf_token": csrf},
                          follow_redirects=False).status_code == 303
    assert client.get("/api/review").status_code == 200


def test_a_password_change_ends_every_session(
        settings: Settings, client: TestClient, services: Services) -> None:
    login(client, services)
    copied = client.cookies[SESSION_COOKIE]
    Accounts(services.store).set_password("tara", "a new passphrase")
    assert client.get("/api/review").status_code == 401
    assert _replay(settings, services, copied) == 401


def test_the_cli_password_change_ends_every_session(
        settings: Settings, client: TestClient, services: Services) -> None:
    from server.cli.users import user_group

    login(client, services)
    copied = client.cookies[SESSION_COOKIE]
    r = CliRunner().invoke(user_group, ["password", "tara", "--password-stdin"],
                           obj={"settings": settings}, input="a new passphrase\n")
    assert r.exit_code == 0, r.output
    assert _replay(settings, services, copied) == 401
    assert _log_in(client, password="a new passphrase").status_code == 303


def test_a_session_signed_before_versions_existed_is_refused(
        settings: Settings, client: TestClient, services: Services) -> None:
    """Cookies issued before the upgrade carry no version: they end with it."""
    Accounts(services.store).add("ian", "instructor", "battery staple")
    client.cookies.set(SESSION_COOKIE, _forged_session("ian", settings.secret_key or ""))
    assert client.get("/api/review").status_code == 401


def test_a_disabled_user_loses_sessions_and_tokens_at_once(
        settings: Settings, client: TestClient, services: Services) -> None:
    accounts = Accounts(services.store)
    login(client, services)
    token = {"Authorization": f"Bearer {accounts.issue_token('tara')}"}
    with TestClient(_app(settings, services)) as script:
        assert script.get("/api/review", headers=token).status_code == 200
        accounts.disable("tara")
        assert client.get("/api/review").status_code == 401
        r = script.get("/api/review", headers=token)
        assert r.status_code == 401 and "disabled" in r.json()["error"]["message"]
    client.cookies.clear()
    r = _log_in(client)
    assert r.status_code == 401 and SESSION_COOKIE not in client.cookies
    accounts.enable("tara")
    assert _log_in(client).status_code == 303
    with TestClient(_app(settings, services)) as script:  # the token was never revoked
        assert script.get("/api/review", headers=token).status_code == 200


def test_a_revoked_token_stops_working(client: TestClient, services: Services) -> None:
    accounts = Accounts(services.store)
    accounts.add("tara", "ta", None)
    headers = {"Authorization": f"Bearer {accounts.issue_token('tara')}"}
    assert client.get("/api/review", headers=headers).status_code == 200
    accounts.revoke_token("tara")
    assert client.get("/api/review", headers=headers).status_code == 401
    user = services.store.user("tara")
    assert user is not None and user.token_hash is None and user.token_expires_at is None


def test_tokens_expire_after_90_days_unless_told_otherwise(services: Services) -> None:
    from datetime import UTC, datetime, timedelta

    accounts = Accounts(services.store)
    accounts.add("tara", "ta", None)
    before = datetime.now(UTC)
    accounts.issue_token("tara")
    expires = services.store.user("tara").token_expires_at  # type: ignore[union-attr]
    assert expires is not None
    assert before + timedelta(days=90) <= expires <= datetime.now(UTC) + timedelta(days=90)
    accounts.issue_token("tara", days=7)
    expires = services.store.user("tara").token_expires_at  # type: ignore[union-attr]
    assert expires is not None and expires - before < timedelta(days=7, minutes=1)
    with pytest.raises(ValueError, match="at least 1 day"):
        accounts.issue_token("tara", days=0)


def test_an_expired_token_gets_401_saying_to_issue_a_new_one(
        client: TestClient, services: Services) -> None:
    from datetime import UTC, datetime, timedelta

    accounts = Accounts(services.store)
    accounts.add("tara", "ta", None)
    headers = {"Authorization": f"Bearer {accounts.issue_token('tara')}"}
    assert client.get("/api/review", headers=headers).status_code == 200
    services.store.update_user("tara", token_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    r = client.get("/api/review", headers=headers)
    assert r.status_code == 401
    message = r.json()["error"]["message"]
    assert "expired" in message and "askta user token tara" in message


def test_a_token_without_an_expiry_date_is_refused(client: TestClient,
                                                   services: Services) -> None:
    accounts = Accounts(services.store)
    accounts.add("tara", "ta", None)
    headers = {"Authorization": f"Bearer {accounts.issue_token('tara')}"}
    services.store.update_user("tara", token_expires_at=None)
    assert client.get("/api/review", headers=headers).status_code == 401


# --- 6. passwords ------------------------------------------------------------------------
@pytest.mark.parametrize("password", ["", "pw", "x" * 11, " " * 14, "\t\n" * 8])
def test_short_or_empty_passwords_are_refused_everywhere(services: Services,
                                                         password: str) -> None:
    from server.accounts import WeakPassword

    accounts = Accounts(services.store)
    with pytest.raises(WeakPassword, match="at least 12 characters"):
        accounts.add("tara", "ta", password)
    assert services.store.user("tara") is None
    accounts.add("tara", "ta", "correct horse")
    with pytest.raises(WeakPassword, match="at least 12 characters"):
        accounts.set_password("tara", password)
    assert accounts.login("tara", "correct horse") is not None
    assert accounts.login("tara", password) is None


def test_twelve_characters_are_enough(services: Services) -> None:
    accounts = Accounts(services.store)
    accounts.add("tara", "ta", "x" * 12)
    assert accounts.login("tara", "x" * 12) is not None
