"""server/cli/main.py: the commands an instructor types, their output and exit codes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.kb import KnowledgeBase
from server.cli.exit_codes import ExitCode
from server.cli.main import cli


@pytest.fixture
def run(kb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ASKTA_MODEL", "hashing")
    monkeypatch.setenv("ASKTA_KB_DIR", str(kb_dir))
    monkeypatch.setenv("ASKTA_DATA_DIR", str(tmp_path / "data"))

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    return invoke


def test_help_has_an_example(run) -> None:  # type: ignore[no-untyped-def]
    result = run("--help")
    assert result.exit_code == 0 and "Example:" in result.output
    for command in ("serve", "index", "ask", "eval", "check", "schema"):
        assert command in result.output


def test_check_ok_and_broken(run, kb_dir: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("check")
    assert result.exit_code == 0 and result.output.startswith("ok, 19 entries (17 published)")
    (kb_dir / "why-nonlinearities.yaml").write_text("id: why-nonlinearities\nquestion: [oops\n")
    result = run("check")
    assert result.exit_code == 3
    assert "kb/why-nonlinearities.yaml: line 3: is not valid YAML" in result.output


def test_index_then_ask(run) -> None:  # type: ignore[no-untyped-def]
    result = run("index", "--json")
    assert result.exit_code == 0
    stats = json.loads(result.output)
    assert stats["entries"] == 19 and stats["added"] == 19
    again = json.loads(run("index", "--json").output)
    assert again["added"] == again["changed"] == 0
    result = run("ask", "Why do we need ReLUs or other nonlinearities?", "--json")
    body = json.loads(result.output)
    assert body["answered"] and body["entry"]["id"] == "why-nonlinearities"
    result = run("ask", "qwertyuiop")
    assert "Not answered yet" in result.output and "Why:" in result.output


def test_eval_json(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "q.yaml"
    f.write_text(
        '- {q: "Why do we need ReLUs or other nonlinearities?", expect: why-nonlinearities}\n'
        '- {q: "What are limitations of SGD?", expect: null}\n'
    )
    result = run("eval", str(f), "--json", "--calibrate")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["total"] == 2 and report["top1"] == 1.0 and report["overall"] == 1.0
    assert "calibration" in report and report["thresholds"]["score"] > 0


def test_schema(run) -> None:  # type: ignore[no-untyped-def]
    schema = json.loads(run("schema").output)
    assert "alternate_questions" in schema["properties"]


def test_bad_setting_is_a_usage_error(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ASKTA_CHAT_RATE_LIMIT", "lots")
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 2 and "30/minute" in result.output


def test_serve_skips_a_broken_file_with_a_clear_warning(run, kb_dir: Path,  # type: ignore[no-untyped-def]
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken file must not stop the server (no staff action can): serve warns, names the
    file, the line and the field, and starts; `askta check` still fails on it."""
    monkeypatch.setenv("ASKTA_SECRET_KEY", "test-secret-key-of-at-least-32-characters")
    started: list[str] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: started.append(app))
    (kb_dir / "course-calendar.yaml").write_text("id: course-calendar\nquestion: When?\nbogus: 1\n")
    umask = os.umask(0o022)
    try:
        result = run("serve", "--port", "1")
    finally:
        os.umask(umask)  # serve narrows the process umask: give the tests theirs back
    assert result.exit_code == 0 and started == ["server.web.app:create_app"]
    assert result.output.startswith("warning: 1 file(s) of the knowledge base are broken")
    assert "kb/course-calendar.yaml: line 3: 'bogus' is not a field of an entry" in result.output
    assert "Traceback" not in result.output
    assert run("check").exit_code == 3


def test_check_names_a_broken_demo_parameter_declaration(run, kb_dir: Path) -> None:  # type: ignore[no-untyped-def]
    demo = kb_dir.parent / "demos" / "mse_vs_outliers.py"
    text = demo.read_text()
    line = text[:text.index("OUTLIER_STD = ")].count("\n") + 1
    demo.write_text(text.replace("min=1.0, max=50.0", "min=1.0, max=5.0"))
    result = run("check")
    assert result.exit_code == 3
    assert (f"demos/mse_vs_outliers.py: line {line}: parameter declaration: the value of "
            "OUTLIER_STD, 10.0, is outside min..max (1.0..5.0)") in result.output
    assert "Traceback" not in result.output


def test_serve_still_needs_the_kb_folder(run, tmp_path: Path,  # type: ignore[no-untyped-def]
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASKTA_KB_DIR", str(tmp_path / "nowhere"))
    result = run("serve", "--port", "1")
    assert result.exit_code == 3 and "is not a folder" in result.output


def test_serve_with_workers_needs_postgresql(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """SQLite takes one writer at a time: several web processes are refused with what to
    do; on PostgreSQL uvicorn gets the workers, warned that without Redis rate limits
    count per process."""
    monkeypatch.setenv("ASKTA_SECRET_KEY", "test-secret-key-of-at-least-32-characters")
    started: list[dict[str, object]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: started.append(kw))
    result = CliRunner().invoke(cli, ["serve", "--workers", "2"])
    assert result.exit_code == 2 and not started
    assert "--workers 2 needs PostgreSQL" in result.output
    assert "ASKTA_DATABASE_URL=postgresql+psycopg://" in result.output
    assert "--reload runs one process" in CliRunner().invoke(
        cli, ["serve", "--workers", "2", "--reload"]).output

    def serve(*args: str):  # type: ignore[no-untyped-def]
        umask = os.umask(0o022)
        try:
            return run("serve", *args)
        finally:
            os.umask(umask)  # serve narrows the process umask: give the tests theirs back

    monkeypatch.setenv("ASKTA_DATABASE_URL", "postgresql+psycopg://askta@db.invalid/askta")
    result = serve("--workers", "3")
    assert result.exit_code == 0 and started[0]["workers"] == 3
    assert "each web process counts rate limits and login attempts on its own" in result.output
    monkeypatch.setenv("ASKTA_REDIS_URL", "redis://127.0.0.1:6379/0")
    result = serve("--workers", "3")
    assert result.exit_code == 0 and "counts rate limits" not in result.output
    assert serve("--port", "1").exit_code == 0 and started[-1]["workers"] is None


def test_check_demos_without_a_sandbox_says_why(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ASKTA_SANDBOX_BWRAP", "/nonexistent/bwrap")
    result = run("check", "--demos")
    assert result.exit_code == 4
    assert result.output.startswith("error: ") and "bwrap" in result.output
    assert "Traceback" not in result.output


def test_sandbox_run_without_a_sandbox_exits_as_check_does(run, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """One exit code for "the sandbox cannot run here", whichever command meets it."""
    monkeypatch.setenv("ASKTA_SANDBOX_BWRAP", "/nonexistent/bwrap")
    demo = tmp_path / "demo.py"
    demo.write_text("print('hi')\n")
    result = run("sandbox", "run", str(demo), "--device", "cpu")
    assert result.exit_code == run("check", "--demos").exit_code == ExitCode.UNAVAILABLE
    assert result.output.startswith("error: ") and "bwrap" in result.output
    assert "Traceback" not in result.output


def test_check_overlaps_text_and_json(run, kb_dir: Path) -> None:  # type: ignore[no-untyped-def]
    shared = "what's the difference between a pytorch tensor and a numpy array"
    KnowledgeBase.load(kb_dir).add_alternate("why-nonlinearities", shared)
    result = run("check", "--overlaps")
    assert result.exit_code == 1, result.output  # confusable entries: the check fails
    assert "valid, 19 entries; " in result.output and "could be confused:" in result.output
    assert re.search(r"^  pytorch-vs-numpy ~ why-nonlinearities  \(up to 0\.9\d\)$",
                     result.output, re.M)
    assert re.search(rf'^    "{re.escape(shared)}" \(why-nonlinearities\) lands on '
                     r"pytorch-vs-numpy: 0\.9\d against 0\.\d\d for its own entry$",
                     result.output, re.M)
    data = json.loads(run("check", "--overlaps", "--json").output)
    assert data["ok"] is False and data["entries"] == 19
    pair = next(o for o in data["overlaps"]
                if (o["a"]["id"], o["b"]["id"]) == ("pytorch-vs-numpy", "why-nonlinearities"))
    assert pair["b"]["question"] == "Why do we need ReLUs or other nonlinearities?"
    assert ("why-nonlinearities", shared, "pytorch-vs-numpy") in {
        (f["entry_id"], f["phrasing"], f["nearest"]) for f in pair["flips"]}
    assert ("pytorch-vs-numpy", "what's the difference between a torch tensor and a numpy array",
            "why-nonlinearities") in {(f["entry_id"], f["phrasing"], f["nearest"])
                                      for f in pair["flips"]}
    assert "overlaps" not in json.loads(run("check", "--json").output)  # only when asked


def test_check_overlaps_none(run, kb_dir: Path) -> None:  # type: ignore[no-untyped-def]
    for path in kb_dir.glob("*.yaml"):
        path.unlink()
    (kb_dir / "exam-room.yaml").write_text(
        "id: exam-room\nquestion: Where is the exam held?\nanswer: Room 101.\n")
    (kb_dir / "why-relu.yaml").write_text(
        "id: why-relu\nquestion: Why do we need nonlinear activation functions?\n"
        "answer: Two linear layers collapse into one.\n")
    result = run("check", "--overlaps")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok, 2 entries (2 published), no confusable entries")
    assert json.loads(run("check", "--overlaps", "--json").output)["overlaps"] == []
