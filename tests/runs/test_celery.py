"""The Celery executor with real parts: a real Redis, real `askta worker` processes
running demos in bubblewrap, and two web apps that share them.

A run submitted through web A executes on a worker and streams through web B; a worker
killed with SIGKILL mid-run ends that run as `error` within 30 s, and the next run
succeeds on the other worker. The tests without workers check the API's refusals and
the ending of runs whose worker is gone, against Redis alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from indexer.embedders import HashingEmbedder
from server.config import Settings
from server.runs import redis_keys as k
from server.services import Services
from server.web.app import create_app
from tests.conftest import REPO
from tests.web.test_routes_runs import parse_sse

QUICK = '''"""Says hello from the worker."""
print("hello from a worker")
'''
SLOW = '''"""Starts, then takes its time."""
import time
print("started", flush=True)
time.sleep(6)
print("finished")
'''
ENTRY = """id: {id}
question: {question}
answer: |
  A demo for the worker tests.
tags: [tests]
demo: demos/{id_}.py
status: published
"""


def add_demo(kb_dir: Path, entry_id: str, question: str, code: str) -> None:
    name = entry_id.replace("-", "_")
    (kb_dir.parent / "demos" / f"{name}.py").write_text(code, encoding="utf-8")
    (kb_dir / f"{entry_id}.yaml").write_text(
        ENTRY.format(id=entry_id, question=question, id_=name), encoding="utf-8")


def web_settings(root: Path, redis_url: str, **changes: Any) -> Settings:
    """A web app's settings on its own copy of the KB (with the test demos), Celery executor."""
    kb = root / "kb"
    if not kb.exists():
        shutil.copytree(REPO / "kb", kb)
        shutil.copytree(REPO / "demos", root / "demos")
        add_demo(kb, "worker-hello", "How does a worker say hello?", QUICK)
        add_demo(kb, "worker-slow", "How long does a slow worker take?", SLOW)
    return Settings(kb_dir=kb, data_dir=root / "data", model="hashing", kb_git="off",
                    executor="celery", redis_url=redis_url, demo_rate_limit="off",
                    secret_key="test-secret-key-of-at-least-32-characters", **changes)


class Web:
    """One web app over its own Services (its own data dir and database)."""

    def __init__(self, settings: Settings) -> None:
        self.services = Services.start(settings, embedder=HashingEmbedder())
        self._client = TestClient(create_app(settings, services=self.services))
        self.client = self._client.__enter__()

    def close(self) -> None:
        self._client.__exit__(None, None, None)
        self.services.close()


class Worker:
    """An `askta worker` subprocess."""

    def __init__(self, redis_url: str, log: Path, device: str = "cpu") -> None:
        env = {**os.environ, "ASKTA_REDIS_URL": redis_url, "ASKTA_SANDBOX_PRELOAD_TORCH": "false",
               "ASKTA_SANDBOX_TIMEOUT_S": "20"}
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli.main", "worker", "--device", device, "--pool", "1"],
            cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        self.name = f"askta-{device}-{self.proc.pid}@"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_for_workers(r: redis.Redis, n: int, workers: list[Worker], timeout_s: float = 90
                     ) -> None:
    deadline = time.monotonic() + timeout_s
    while int(r.eval(k.WORKERS_ALIVE, 1, k.workers_key("cpu"))) < n:  # type: ignore[arg-type]
        for w in workers:
            assert w.proc.poll() is None, w.log.read_text(errors="replace")
        assert time.monotonic() < deadline, "the workers did not connect in time"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def shared_redis(redis_server: str) -> Iterator[str]:
    """Database 0 of the test Redis for this module's workers (the per-test fixture uses
    1-15), flushed before and after."""
    url = f"{redis_server}/0"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def cluster(shared_redis: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Web, Web, list[Worker]]]:
    """Two web apps and two CPU workers on one Redis."""
    root = tmp_path_factory.mktemp("cluster")
    workers = [Worker(shared_redis, root / f"worker-{i}.log") for i in range(2)]
    webs: list[Web] = []
    try:
        r = redis.Redis.from_url(shared_redis, decode_responses=True)
        wait_for_workers(r, 2, workers)
        r.close()
        webs = [Web(web_settings(root / name, shared_redis)) for name in ("a", "b")]
        yield webs[0], webs[1], workers
    finally:
        for web in webs:
            web.close()
        for w in workers:
            w.stop()


def submit(web: Web, entry_id: str) -> dict[str, Any]:
    r = web.client.post("/api/runs", json={"entry_id": entry_id, "device": "cpu"})
    assert r.status_code == 202, r.text
    return r.json()


@pytest.mark.sandbox
def test_a_run_submitted_to_a_streams_through_b(cluster: tuple[Web, Web, list[Worker]]) -> None:
    a, b, workers = cluster
    created = submit(a, "worker-hello")
    events = parse_sse(b.client.get(created["events_url"]).text)
    assert [e["event"] for e in events] == ["stdout", "done"]
    assert events[0]["data"] == {"text": "hello from a worker\n"}
    assert events[-1]["data"]["status"] == "ok"
    run = b.client.get(f"/api/runs/{created['id']}").json()
    assert run["status"] == "ok" and run["stdout"] == "hello from a worker\n"
    assert any(run["worker"].startswith(w.name) for w in workers), run["worker"]
    assert a.client.get(f"/api/runs/{created['id']}").json() == run
    # the legacy routes ride on the same runs
    legacy = b.client.post("/api/entries/worker-hello/demo/run", json={"device": "cpu"})
    assert legacy.status_code == 200 and legacy.json()["stdout"] == "hello from a worker\n"
    # health and metrics see both workers
    assert a.client.get("/healthz").json()["runs"]["workers"]["cpu"] == 2
    assert 'askta_runs_workers{device="cpu"} 2.0' in b.client.get("/metrics").text


@pytest.mark.sandbox
def test_a_reconnecting_reader_sees_each_event_once(cluster: tuple[Web, Web, list[Worker]]
                                                    ) -> None:
    a, b, _ = cluster
    created = submit(a, "worker-slow")
    first: list[dict[str, Any]] = []
    with b.client.stream("GET", created["events_url"]) as r:
        buffer = ""
        for chunk in r.iter_text():
            buffer += chunk
            first = parse_sse(buffer)
            if first:
                break
    assert [e["event"] for e in first] == ["stdout"]
    rest = parse_sse(a.client.get(created["events_url"],
                                  headers={"Last-Event-ID": str(first[-1]["id"])}).text)
    events = first + rest
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert "".join(e["data"]["text"] for e in events if e["event"] == "stdout") == \
        "started\nfinished\n"
    assert events[-1]["event"] == "done" and events[-1]["data"]["status"] == "ok"


@pytest.mark.sandbox
@pytest.mark.slow
def test_a_worker_killed_mid_run_ends_it_as_error_and_the_next_run_succeeds(
        cluster: tuple[Web, Web, list[Worker]]) -> None:
    a, b, workers = cluster
    created = submit(a, "worker-slow")
    deadline = time.monotonic() + 60
    while (run := b.client.get(f"/api/runs/{created['id']}").json())["stdout"] != "started\n":
        assert time.monotonic() < deadline, run
        time.sleep(0.05)
    assert run["status"] == "running"
    victim = next(w for w in workers if run["worker"].startswith(w.name))
    killed_at = time.monotonic()
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait()
    events = parse_sse(b.client.get(created["events_url"]).text)
    waited = time.monotonic() - killed_at
    assert events[-1]["event"] == "done" and events[-1]["data"]["status"] == "error"
    assert waited < 30, waited
    ended = a.client.get(f"/api/runs/{created['id']}").json()
    assert ended["status"] == "error" and "stopped" in ended["stderr"]
    assert "finished" not in ended["stdout"]
    # the next run goes to the live worker
    survivor = next(w for w in workers if w is not victim)
    nxt = submit(b, "worker-hello")
    deadline = time.monotonic() + 60
    while (run := a.client.get(f"/api/runs/{nxt['id']}").json())["status"] in ("queued",
                                                                               "running"):
        assert time.monotonic() < deadline, run
        time.sleep(0.05)
    assert run["status"] == "ok" and run["worker"].startswith(survivor.name)


# --- against Redis alone ----------------------------------------------------------------
def beat(r: redis.Redis, device: str, name: str = "fake@test") -> None:
    """Announce a worker (no process behind it) for `device`."""
    r.eval(k.WORKER_BEAT, 1, k.workers_key(device), name, 60)


@pytest.fixture
def web(tmp_path: Path, redis_url: str) -> Iterator[Web]:
    w = Web(web_settings(tmp_path, redis_url, runs_queue_max=1))
    yield w
    w.close()


def test_no_worker_means_no_run_and_says_so(web: Web) -> None:
    cpu = web.client.post("/api/runs", json={"entry_id": "worker-hello", "device": "cpu"})
    assert cpu.status_code == 503 and "askta worker" in cpu.json()["error"]["message"]
    gpu = web.client.post("/api/runs", json={"entry_id": "worker-hello", "device": "cuda"})
    assert gpu.status_code == 422 and gpu.json()["error"]["code"] == "device_unavailable"
    assert "No GPU worker" in gpu.json()["error"]["message"]


def test_cuda_runs_go_to_the_gpu_queue_only(web: Web, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    beat(r, "cuda")
    created = web.client.post("/api/runs", json={"entry_id": "worker-hello", "device": "auto"})
    assert created.status_code == 202
    assert r.llen("gpu") == 1 and r.llen("cpu") == 0
    assert web.client.get(f"/api/runs/{created.json()['id']}").json()["device"] == "cuda"
    assert web.client.get("/healthz").json()["sandbox"]["cuda"] is True


def test_a_full_queue_is_503_with_retry_after(web: Web, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    beat(r, "cpu")
    assert web.client.post("/api/runs", json={"entry_id": "worker-hello"}).status_code == 202
    full = web.client.post("/api/runs", json={"entry_id": "worker-hello"})
    assert full.status_code == 503 and int(full.headers["Retry-After"]) >= 1
    health = web.client.get("/healthz").json()["runs"]
    assert health == {"executor": "celery", "workers": {"cpu": 1, "cuda": 0},
                      "queue_depth": {"cpu": 1, "gpu": 0}, "running": 0, "reason": None}
    assert 'askta_runs_queue_depth{queue="cpu"} 1.0' in web.client.get("/metrics").text


def test_a_running_run_without_a_heartbeat_ends_as_error(web: Web, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    beat(r, "cpu")
    run_id = web.client.post("/api/runs", json={"entry_id": "worker-hello"}).json()["id"]
    assert r.eval(k.START, 3, k.run_key(run_id), k.alive_key(run_id), k.RUNNING,
                  "gone@test", 1, run_id) == 1
    assert web.client.get(f"/api/runs/{run_id}").json()["status"] == "running"
    time.sleep(1.1)  # the heartbeat expires
    run = web.client.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "error" and "gone@test" in run["stderr"]
    # the message Redis delivers again later finds the run ended and does nothing
    assert r.eval(k.START, 3, k.run_key(run_id), k.alive_key(run_id), k.RUNNING,
                  "other@test", 10, run_id) == 0
    events = parse_sse(web.client.get(f"/api/runs/{run_id}/events").text)
    assert [e["event"] for e in events] == ["stderr", "done"]
