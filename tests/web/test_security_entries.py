"""Attacks on the knowledge base through the staff tools, each replayed against the server:
a TA's draft that stops the server from restarting, demo paths that reach server code,
and host paths in the errors students see."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from indexer.kb import KnowledgeBase
from server.cli.main import cli
from server.config import Settings
from server.review.importer import ImportedQuestion, Importer
from server.services import Services
from server.web.app import create_app
from tests.review.test_queue import OFF_TOPIC, ask, staff
from tests.web.test_routes_admin import form_values, instructor
from tests.web.test_routes_demos import FakeRunner

INJECTED = "Hello.\rdemo: demos/does_not_exist.py"
ENTRY = "why-nonlinearities"
DEMO = "demos/linear_layers_collapse.py"
SERVER_CODE = "SERVER_SECRET = 'the code of the server, never shown'\n"


@pytest.fixture(autouse=True)
def _keep_umask() -> Iterator[None]:
    """`askta serve` narrows the process umask; give the rest of the test run its own back."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


@pytest.fixture
def askta(settings: Settings, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run an askta command over the test settings' kb/ and data dir."""
    monkeypatch.setenv("ASKTA_MODEL", "hashing")
    monkeypatch.setenv("ASKTA_KB_DIR", str(settings.kb_dir))
    monkeypatch.setenv("ASKTA_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ASKTA_SECRET_KEY", "test-secret-key-of-at-least-32-characters")

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    return invoke


def draft(client: TestClient, services: Services, fields: dict[str, Any]) -> Any:
    reply = ask(client, OFF_TOPIC)
    return client.post(f"/api/review/{reply['review_id']}/draft",
                       json={"id": "pizza", "question": OFF_TOPIC, "status": "draft", **fields},
                       headers=staff(services))


# --- 5. a TA's draft cannot stop the server ------------------------------------------------
def test_a_ta_draft_with_a_bare_cr_cannot_inject_a_demo(client: TestClient, services: Services,
                                                        askta) -> None:  # type: ignore[no-untyped-def]
    r = draft(client, services, {"answer": INJECTED})
    assert r.status_code == 200, r.text
    saved = KnowledgeBase.load(services.kb.kb_dir).get("pizza")  # before: KnowledgeBaseError
    assert saved.demo is None and "demo: demos/does_not_exist.py" in saved.answer
    result = askta("check")
    assert result.exit_code == 0, result.output  # before: exit 3, and so did askta serve


def test_the_admin_form_with_a_bare_cr_cannot_inject_a_demo(client: TestClient,
                                                            services: Services, askta) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/admin/entries/new", data=form_values(answer=INJECTED),
                    headers=instructor(services), follow_redirects=False)
    assert r.status_code == 303, r.text
    assert KnowledgeBase.load(services.kb.kb_dir).get("tensor-broadcasting").demo is None
    assert askta("check").exit_code == 0


def test_an_import_with_cr_line_endings_cannot_inject_a_demo(services: Services,
                                                             askta) -> None:  # type: ignore[no-untyped-def]
    page = services.kb.kb_dir.parent / "week9.txt"
    page.write_bytes(b"Week 9\n\nWhat is a tensor, really?\n\n"
                     b"An array with axes.\rdemo: demos/does_not_exist.py\n")
    result = askta("import", str(page))
    assert result.exit_code == 0, result.output
    assert "1 draft entries wrote" in result.output
    result = askta("check")
    assert result.exit_code == 0, result.output
    created = Importer(KnowledgeBase.load(services.kb.kb_dir)).run(
        [ImportedQuestion("Is a CR a line break?", "Yes.\rstatus: published")])
    assert created.created and not created.skipped
    assert KnowledgeBase.load(services.kb.kb_dir).get(
        created.created[0]["id"]).status.value == "draft"


@pytest.mark.parametrize("answer", ["a\x85b", "a\u2028b", "a\u2029b", "\x85", "- \x85",
                                    "a\x85\n", "x\u2028#y", "a\n\u2029b", "\u2028- a"])
def test_nel_ls_ps_answers_are_saved_as_they_read_back(client: TestClient, services: Services,
                                                       answer: str) -> None:
    r = draft(client, services, {"answer": answer})
    assert r.status_code == 200, r.text  # before: some silently changed, some refused as YAML
    saved = KnowledgeBase.load(services.kb.kb_dir).get("pizza")
    expected = answer.replace("\x85", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    assert saved.answer.rstrip("\n") == expected.rstrip("\n")
    assert services.kb.get("pizza") == saved


@pytest.mark.parametrize("field", ["id", "question", "alternate_questions", "answer", "tags",
                                   "demo"])
@pytest.mark.parametrize("char", ["\x1b", "\x00", "\x9b"])
def test_control_characters_are_refused_naming_the_field(client: TestClient, services: Services,
                                                         field: str, char: str) -> None:
    value: Any = {"id": f"pizza{char}", "question": f"{OFF_TOPIC}{char}?",
                  "alternate_questions": [f"pizza{char} toppings"], "answer": f"Yes{char}.",
                  "tags": [f"food{char}"], "demo": f"{DEMO}{char}"}[field]
    r = draft(client, services, {field: value})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert field in error["fields"], error
    assert not (services.kb.kb_dir / "pizza.yaml").exists()


def test_a_broken_file_does_not_stop_the_server(settings: Settings, askta, caplog,  # type: ignore[no-untyped-def]
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    broken = settings.kb_dir / "course-calendar.yaml"
    broken.write_text("id: course-calendar\nquestion: When?\nanswer: |\n  x\ndemo: demos/no.py\n")
    with caplog.at_level(logging.WARNING, logger="askta"):
        svc = Services.start(settings)  # before: KnowledgeBaseError, the server did not start
    try:
        assert "course-calendar" not in svc.kb.entries and len(svc.kb) == 18
        assert "kb/course-calendar.yaml" in caplog.text
        with TestClient(create_app(settings, services=svc)) as c:
            r = c.get("/readyz")
            assert r.status_code == 200, r.text
            check = r.json()["checks"]["kb"]
            assert check["ok"] is True and check["skipped"] == ["kb/course-calendar.yaml"]
            assert str(settings.kb_dir) not in r.text
    finally:
        svc.close()
    result = askta("check")  # check stays strict
    assert result.exit_code == 3 and "kb/course-calendar.yaml" in result.output
    started: list[str] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: started.append(app))
    result = askta("serve", "--port", "8765")
    assert result.exit_code == 0, result.output
    assert started == ["server.web.app:create_app"]
    assert "warning" in result.output and "kb/course-calendar.yaml" in result.output


def test_readyz_reports_a_clean_kb(client: TestClient) -> None:
    check = client.get("/readyz").json()["checks"]["kb"]
    assert check == {"ok": True, "required": False, "entries": 19, "skipped": []}


# --- 6. demo paths stay in demos/ ------------------------------------------------------------
def _server_file(settings: Settings) -> Path:
    project = settings.kb_dir.parent
    (project / "server").mkdir(exist_ok=True)
    path = project / "server" / "app.py"
    path.write_text(SERVER_CODE)
    return path


@pytest.mark.parametrize("how", ["server-path", "symlink"])
def test_a_demo_outside_demos_is_refused_by_check(settings: Settings, askta, how: str) -> None:  # type: ignore[no-untyped-def]
    server_file = _server_file(settings)
    entry_file = settings.kb_dir / f"{ENTRY}.yaml"
    if how == "server-path":
        entry_file.write_text(entry_file.read_text().replace(DEMO, "server/app.py"))
    else:
        demo = settings.kb_dir.parent / DEMO
        demo.unlink()
        demo.symlink_to(server_file)
    result = askta("check")
    assert result.exit_code == 3, result.output  # before: ok
    assert f"kb/{ENTRY}.yaml" in result.output and "'demo'" in result.output


@pytest.fixture
def runner(services: Services) -> Iterator[FakeRunner]:
    fake = FakeRunner()
    services.sandbox = fake  # type: ignore[assignment]
    yield fake


def _assert_never_shown_or_run(client: TestClient, services: Services, runner: FakeRunner) -> None:
    page = client.get(f"/entries/{ENTRY}")
    assert page.status_code == 200 and "SERVER_SECRET" not in page.text
    assert client.get(f"/api/entries/{ENTRY}").json()["demo"] is None
    r = client.post(f"/api/entries/{ENTRY}/demo/run", json={})
    assert r.status_code == 404, r.text
    assert client.get(f"/api/entries/{ENTRY}/demo/stream").status_code == 404
    assert runner.calls == []


def test_a_demo_swapped_for_a_symlink_out_is_never_shown_or_run(
    client: TestClient, services: Services, settings: Settings, runner: FakeRunner
) -> None:
    server_file = _server_file(settings)
    demo = settings.kb_dir.parent / DEMO
    demo.unlink()
    demo.symlink_to(server_file)  # after the KB was checked and loaded
    _assert_never_shown_or_run(client, services, runner)


def test_an_entry_pointing_at_server_code_is_never_shown_or_run(
    client: TestClient, services: Services, settings: Settings, runner: FakeRunner
) -> None:
    _server_file(settings)
    entry = services.kb.get(ENTRY)
    # in memory only, as if a check had been skipped: the schema refuses this path
    services.kb.remember([entry.model_copy(update={"demo": "server/app.py"})])
    _assert_never_shown_or_run(client, services, runner)


def test_the_admin_demo_test_runs_only_demos(client: TestClient, services: Services,
                                             settings: Settings) -> None:
    server_file = _server_file(settings)
    ran: list[str] = []

    class Sandbox:
        def run(self, code: str, device: str = "auto") -> Any:
            ran.append(code)
            raise AssertionError("never reached")

        def close(self) -> None:
            pass

    services.sandbox = Sandbox()  # type: ignore[assignment]
    h = instructor(services)
    (settings.kb_dir.parent / "demos" / "escape.py").symlink_to(server_file)
    for demo in ("server/app.py", "kb/../server/app.py", "demos/escape.py",
                 "demos/../server/app.py"):
        r = client.post("/api/admin/demo/test", json={"demo": demo}, headers=h)
        assert r.status_code == 422, (demo, r.text)  # before: server/app.py ran
    assert ran == []
    assert "demos/escape.py" not in services.editor.demo_files()
    assert DEMO in services.editor.demo_files()


# --- 6. no host paths in what students see -------------------------------------------------
SANDBOX_ERROR = ("Demo runs are disabled: the sandbox interpreter "
                 "/home/alice/askta/.venv-sandbox/bin/python does not exist: run "
                 "`make sandbox-env` or set ASKTA_SANDBOX_PYTHON")


def test_the_entry_page_shows_no_host_path(client: TestClient, services: Services,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "sandbox_error", SANDBOX_ERROR)
    page = client.get(f"/entries/{ENTRY}")
    assert page.status_code == 200
    assert "/home/" not in page.text  # before: the full path was on the page
    assert "the sandbox interpreter &lt;path&gt; does not exist" in page.text
    r = client.post(f"/api/entries/{ENTRY}/demo/run", json={})
    assert r.status_code == 503 and "/home/" not in r.text
    assert "/home/" not in client.get("/healthz").text + client.get("/readyz").text
