"""Graceful shutdown of a real `askta serve` process: on SIGTERM a demo run in flight
finishes and is answered, the questions asked just before are in the database, and the
process exits 0 within ASKTA_SHUTDOWN_GRACE_S (a run longer than that is stopped)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.sandbox import SandboxRunner, SandboxUnavailable
from server.store import Store
from tests.live import copy_project
from tests.store.readback import questions

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

REPO = Path(__file__).resolve().parents[2]
STARTUP_S = 180  # the model-free server starts in seconds; the warm pool imports torch
SLOW_DEMO = """\
import time
print("started", flush=True)
time.sleep({seconds})
print("finished", flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def askta_serve(tmp_path: Path, demo_seconds: float, grace_s: float) -> Iterator[Any]:
    """`askta serve` in a subprocess over a private KB copy whose mse-vs-outliers demo
    sleeps `demo_seconds`; yields (process, base URL, data dir) once the pool is warm."""
    kb = copy_project(tmp_path)
    (kb.parent / "demos" / "mse_vs_outliers.py").write_text(
        SLOW_DEMO.format(seconds=demo_seconds), encoding="utf-8")
    data = tmp_path / "data"
    port = free_port()
    env = {**os.environ, "ASKTA_KB_DIR": str(kb), "ASKTA_DATA_DIR": str(data),
           "ASKTA_MODEL": "hashing", "ASKTA_SECRET_KEY": "shutdown-test-key-of-32-characters!",
           "ASKTA_CHAT_RATE_LIMIT": "off", "ASKTA_DEMO_RATE_LIMIT": "off",
           "ASKTA_LOG_FORMAT": "json", "ASKTA_SHUTDOWN_GRACE_S": str(grace_s),
           "ASKTA_SANDBOX_POOL_SIZE": "1", "ASKTA_SANDBOX_GPU_POOL_SIZE": "0",
           "ASKTA_SANDBOX_TIMEOUT_S": str(demo_seconds + 30), "PYTHONUNBUFFERED": "1"}
    # Run from the repository, so this checkout's code is the one imported.
    proc = subprocess.Popen(
        [sys.executable, "-c", "from server.cli.main import main; main()",
         "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: gauge(base, "askta_sandbox_warm_workers", device="cpu") >= 1,
                   STARTUP_S, proc)
        yield proc, base, data
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def gauge(base: str, name: str, **labels: str) -> float:
    """One sample of /metrics; -1 if the server does not answer (yet)."""
    try:
        text = httpx.get(f"{base}/metrics", timeout=5).text
    except httpx.HTTPError:
        return -1
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return -1


def wait_until(ready: Any, timeout_s: float, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"the server exited ({proc.returncode}): "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def run_demo_in_thread(base: str) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def post() -> None:
        try:
            out["response"] = httpx.post(f"{base}/api/entries/mse-vs-outliers/demo/run",
                                         json={"device": "cpu"}, timeout=120)
        except httpx.HTTPError as e:
            out["error"] = e

    thread = threading.Thread(target=post)
    thread.start()
    return thread, out


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """The server's stderr, every line of which must be one JSON object."""
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


def test_sigterm_lets_a_demo_run_finish_and_writes_the_question_log(tmp_path: Path) -> None:
    grace = 20.0
    with askta_serve(tmp_path, demo_seconds=4, grace_s=grace) as (proc, base, data):
        thread, out = run_demo_in_thread(base)
        wait_until(lambda: gauge(base, "askta_sandbox_running") == 1, 60, proc)
        asked = [f"shutdown question {i} about zebras" for i in range(5)]
        with httpx.Client(base_url=base, timeout=30) as c:
            for text in asked:
                assert c.post("/api/chat", json={"message": text}).status_code == 200
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        thread.join(60)
        code = proc.wait(grace + 15)
        took = time.monotonic() - signalled
        stderr = proc.stderr.read() if proc.stderr else ""
    assert "error" not in out, out.get("error")
    response = out["response"]
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "ok", result["stderr"]
    assert "started" in result["stdout"] and "finished" in result["stdout"]
    assert code == 0, stderr
    assert took < grace, took
    print(f"shutdown: SIGTERM with a 4 s demo run in flight -> run finished (200 ok), "
          f"exit 0 after {took:.1f} s")
    lines = json_lines(stderr)
    assert any(x.get("path") == "/api/entries/mse-vs-outliers/demo/run" and x["status"] == 200
               and x["request_id"] for x in lines)
    assert not [x for x in lines if x["level"] in ("ERROR", "CRITICAL")], stderr
    store = Store(f"sqlite:///{data / 'askta.db'}")
    try:
        logged = {q.text for q in questions(store)}
    finally:
        store.close()
    assert set(asked) <= logged


def test_a_run_longer_than_the_grace_is_stopped_and_the_server_exits(tmp_path: Path) -> None:
    grace = 3.0
    with askta_serve(tmp_path, demo_seconds=60, grace_s=grace) as (proc, base, _):
        thread, out = run_demo_in_thread(base)
        wait_until(lambda: gauge(base, "askta_sandbox_running") == 1, 60, proc)
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = proc.wait(grace + 30)
        took = time.monotonic() - signalled
        thread.join(30)
        stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 0, stderr
    assert took < grace + 10, took  # the grace, then the run's sandbox is killed
    print(f"shutdown: SIGTERM with a 60 s run in flight, grace {grace:.0f} s -> run killed, "
          f"exit 0 after {took:.1f} s")
    # the request was cancelled at the end of the grace: no result, the run killed
    assert "error" in out or out["response"].status_code == 500, out
    lines = json_lines(stderr)
    assert any("waiting up to" in x["message"] for x in lines) or \
        any("timeout graceful shutdown" in x["message"] for x in lines), stderr


def test_drain_waits_for_runs_and_refuses_new_ones(tmp_path: Path) -> None:
    """The runner's side of it: `drain` waits for the run in flight (bounded), and
    refuses runs that arrive after it began."""
    from server.config import Settings

    settings = Settings(kb_dir=tmp_path, sandbox_pool_size=1, sandbox_gpu_pool_size=0,
                        sandbox_max_concurrent=1)
    runner = SandboxRunner(settings.sandbox_config())
    try:
        runner.check()
    except SandboxUnavailable as e:  # make test installs bubblewrap and the sandbox env
        pytest.fail(f"the sandbox must run here: {e}")
    runner.start()
    try:
        results: list[Any] = []
        thread = threading.Thread(target=lambda: results.append(
            runner.run(SLOW_DEMO.format(seconds=3), device="cpu")))
        thread.start()
        deadline = time.monotonic() + 60
        while runner.running == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert runner.drain(0.2) is False  # still running
        with pytest.raises(SandboxUnavailable, match="shutting down"):
            runner.run("print(1)", device="cpu")
        assert runner.drain(60) is True
        thread.join(10)
        assert results and results[0].status == "ok" and "finished" in results[0].stdout
        assert runner.running == 0 and runner.waiting == 0
    finally:
        runner.close()
