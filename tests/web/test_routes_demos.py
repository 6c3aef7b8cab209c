"""Demo runs: POST .../demo/run (JSON) and GET .../demo/stream (Server-Sent Events).

Most tests use a small fake runner with the sandbox's interface, for the API's
shape; the tests marked `sandbox` run the real demos in bubblewrap.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.config import Settings
from server.sandbox.errors import DeviceUnavailable, SandboxBusy
from server.sandbox.models import Event, RunResult
from server.services import Services
from server.web.app import create_app

PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5E"
       "rkJggg==")
RESULT_KEYS = {"status", "exit_code", "stdout", "stderr", "images", "device", "duration_ms"}


class FakeRunner:
    """The sandbox runner's interface, answering from a script instead of running code."""

    def __init__(self, *, cuda: bool = False, status: str = "ok", busy: bool = False,
                 delay_s: float = 0.0, free: bool = True, start_delay_s: float = 0.0):
        self.cuda_available = cuda
        self.status, self.busy, self.delay_s = status, busy, delay_s
        self.free, self.start_delay_s = free, start_delay_s
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        pass

    def has_free_runner(self, device: str = "auto") -> bool:
        return self.free

    def _device(self, device: str) -> str:
        if self.busy:
            raise SandboxBusy("all runners busy", retry_after=7)
        if device == "cuda" and not self.cuda_available:
            raise DeviceUnavailable("This server has no CUDA GPU: run the demo on the CPU.")
        return "cuda" if device == "cuda" or (device == "auto" and self.cuda_available) else "cpu"

    def _result(self, device: str) -> RunResult:
        failed = self.status != "ok"
        return RunResult(status=self.status, exit_code=1 if failed else 0,  # type: ignore[arg-type]
                         stdout="step 1\nstep 2\n",
                         stderr="Traceback (most recent call last):\nValueError: boom\n"
                         if failed else "",
                         images=[{"mime": "image/png", "data_base64": PNG}],
                         device=device, duration_ms=12)  # type: ignore[arg-type]

    async def astream(self, code: str, device: str = "auto") -> AsyncIterator[Event]:
        with self._lock:
            self.calls.append((code, device))
        ran_on = self._device(device)
        result = self._result(ran_on)
        await asyncio.sleep(self.start_delay_s)  # waiting for a free runner
        yield Event("stdout", "step 1\n")
        await asyncio.sleep(self.delay_s)
        yield Event("image", {"mime": "image/png", "data_base64": PNG})
        yield Event("stdout", "step 2\n")
        if result.stderr:
            yield Event("stderr", result.stderr)
        yield Event("done", result.to_dict())


def sse_events(text: str) -> list[tuple[str, Any]]:
    """Parse a text/event-stream body into (event, JSON data) pairs."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
def demo_client(settings: Settings, services: Services, runner: FakeRunner) -> Iterator[TestClient]:
    services.sandbox = runner  # type: ignore[assignment]
    with TestClient(create_app(settings, services=services)) as c:
        yield c


RUN = "/api/entries/why-nonlinearities/demo/run"
STREAM = "/api/entries/why-nonlinearities/demo/stream"


def test_run_returns_the_result(demo_client: TestClient, runner: FakeRunner,
                                services: Services) -> None:
    r = demo_client.post(RUN, json={"device": "cpu"})
    assert r.status_code == 200
    body = r.json()
    assert RESULT_KEYS <= set(body)
    assert body["status"] == "ok" and body["device"] == "cpu"
    assert body["stdout"] == "step 1\nstep 2\n"
    assert body["images"] == [{"mime": "image/png", "data_base64": PNG}]
    code, device = runner.calls[0]
    demo = services.kb.demo_path(services.kb.get("why-nonlinearities"))
    assert demo is not None and code == demo.read_text() and device == "cpu"


def test_run_without_body_means_auto(demo_client: TestClient, runner: FakeRunner) -> None:
    assert demo_client.post(RUN).status_code == 200
    assert runner.calls[0][1] == "auto"


def test_a_successful_run_becomes_the_entrys_last_run(demo_client: TestClient) -> None:
    assert demo_client.get("/api/entries/why-nonlinearities").json()["demo"]["last_run"] is None
    demo_client.post(RUN, json={})
    last = demo_client.get("/api/entries/why-nonlinearities").json()["demo"]["last_run"]
    assert last["status"] == "ok" and last["stdout"] == "step 1\nstep 2\n"


def test_run_is_always_live(demo_client: TestClient, runner: FakeRunner) -> None:
    demo_client.post(RUN, json={})
    demo_client.post(RUN, json={})
    assert len(runner.calls) == 2


@pytest.mark.parametrize("runner", [FakeRunner(status="error")])
def test_failed_runs_are_returned_but_not_cached(demo_client: TestClient,
                                                 services: Services) -> None:
    body = demo_client.post(RUN, json={}).json()
    assert services.store.summary()["demo_failures"] == 1
    assert body["status"] == "error" and "ValueError: boom" in body["stderr"]
    assert demo_client.get("/api/entries/why-nonlinearities").json()["demo"]["last_run"] is None


def test_runs_are_logged(demo_client: TestClient, services: Services) -> None:
    demo_client.post(RUN, json={})
    demo_client.get(STREAM)
    assert services.store.summary()["demo_runs"] == 2


def test_stream_sends_lines_images_and_done(demo_client: TestClient) -> None:
    r = demo_client.get(STREAM)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert [e for e, _ in events] == ["stdout", "image", "stdout", "done"]
    assert events[0][1] == {"text": "step 1\n"}
    assert events[1][1] == {"mime": "image/png", "data_base64": PNG}
    done = events[-1][1]
    assert done["status"] == "ok" and done["duration_ms"] == 12 and done["device"] == "cpu"
    assert "stdout" not in done  # the lines came as events already


def test_stream_passes_the_device_and_caches(demo_client: TestClient, runner: FakeRunner,
                                             services: Services) -> None:
    demo_client.get(STREAM, params={"device": "cpu"})
    assert runner.calls[0][1] == "cpu"
    last = demo_client.get("/api/entries/why-nonlinearities").json()["demo"]["last_run"]
    assert last["stdout"] == "step 1\nstep 2\n" and last["images"][0]["data_base64"] == PNG


@pytest.mark.parametrize("runner", [FakeRunner(free=False, start_delay_s=0.6)])
def test_a_run_waiting_for_a_free_runner_says_so_first(demo_client: TestClient) -> None:
    events = sse_events(demo_client.get(STREAM).text)
    assert [e for e, _ in events] == ["waiting", "stdout", "image", "stdout", "done"]
    assert demo_client.post(RUN, json={}).json()["status"] == "ok"  # JSON runs just wait


@pytest.mark.parametrize("runner", [FakeRunner(free=True, start_delay_s=0.6)])
def test_a_slow_first_line_with_a_free_runner_is_not_called_waiting(
        demo_client: TestClient) -> None:
    events = sse_events(demo_client.get(STREAM).text)
    assert [e for e, _ in events][0] == "stdout"


@pytest.mark.parametrize("runner", [FakeRunner(busy=True, free=False)])
def test_a_full_queue_is_still_refused_at_once(demo_client: TestClient) -> None:
    r = demo_client.get(STREAM)
    assert r.status_code == 503 and r.headers["Retry-After"] == "7"


@pytest.mark.parametrize("runner", [FakeRunner(status="error")])
def test_stream_shows_the_traceback(demo_client: TestClient) -> None:
    events = sse_events(demo_client.get(STREAM).text)
    assert ("stderr", {"text": "Traceback (most recent call last):\nValueError: boom\n"}) in events
    assert events[-1][1]["status"] == "error" and events[-1][1]["exit_code"] == 1


@pytest.mark.parametrize("runner", [FakeRunner(cuda=True)])
def test_auto_uses_the_gpu_when_present(demo_client: TestClient) -> None:
    entry = demo_client.get("/api/entries/why-nonlinearities").json()
    assert entry["demo"]["device"] == "cuda"
    assert demo_client.post(RUN, json={"device": "auto"}).json()["device"] == "cuda"


def test_cuda_without_a_gpu_is_a_clear_error(demo_client: TestClient) -> None:
    for r in (demo_client.post(RUN, json={"device": "cuda"}),
              demo_client.get(STREAM, params={"device": "cuda"})):
        assert r.status_code == 422
        assert r.json()["error"] == {"code": "device_unavailable", "message":
                                     "This server has no CUDA GPU: run the demo on the CPU."}


@pytest.mark.parametrize("runner", [FakeRunner(busy=True)])
def test_busy_pool_is_503_with_retry_after(demo_client: TestClient) -> None:
    for r in (demo_client.post(RUN, json={}), demo_client.get(STREAM)):
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "7"
        assert r.json()["error"]["code"] == "unavailable"


def test_many_simultaneous_runs_never_crash(demo_client: TestClient, runner: FakeRunner) -> None:
    runner.delay_s = 0.05
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda _: demo_client.post(RUN, json={}).status_code, range(32)))
    assert set(codes) <= {200, 503}


def test_entry_without_demo_is_404(demo_client: TestClient) -> None:
    for r in (demo_client.post("/api/entries/ai-bias-accountability/demo/run", json={}),
              demo_client.get("/api/entries/ai-bias-accountability/demo/stream")):
        assert r.status_code == 404
        assert "has no demo" in r.json()["error"]["message"]


def test_no_sandbox_is_503_with_the_reason(client: TestClient) -> None:
    r = client.post(RUN, json={})
    assert r.status_code == 503
    assert "disabled" in r.json()["error"]["message"]


def test_the_cache_is_keyed_by_device(demo_client: TestClient, services: Services) -> None:
    demo_client.post(RUN, json={"device": "cpu"})
    path = services.kb.demo_path(services.kb.get("why-nonlinearities"))
    assert path is not None
    cache = services.demo_cache
    code_hash = cache.code_hash(path) or ""
    assert cache.get(code_hash, "cpu") is not None and cache.get(code_hash, "cuda") is None


# --- the real sandbox ----------------------------------------------------------------------

class _KeptOpen:
    """The module's real runner, lent to one test's services: their close() leaves it running."""

    def __init__(self, runner: Any):
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def real_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One bubblewrap runner for this module: one CPU slot and a queue of two."""
    from server.sandbox import SandboxRunner, SandboxUnavailable

    settings = Settings(kb_dir=tmp_path_factory.mktemp("kb"), sandbox_pool_size=1,
                        sandbox_gpu_pool_size=0, sandbox_queue_size=2, sandbox_max_concurrent=1)
    runner = SandboxRunner(settings.sandbox_config())
    try:
        runner.check()
    except SandboxUnavailable as e:  # make test installs bubblewrap and the sandbox env
        pytest.fail(f"the sandbox must run here: {e}")
    runner.start()
    yield runner
    runner.close()


@pytest.fixture
def real_client(settings: Settings, services: Services, real_runner: Any) -> Iterator[TestClient]:
    services.sandbox = _KeptOpen(real_runner)  # type: ignore[assignment]
    with TestClient(create_app(settings, services=services)) as c:
        yield c


@pytest.mark.slow
@pytest.mark.sandbox
def test_real_demo_run_and_stream(real_client: TestClient) -> None:
    body = real_client.post(RUN, json={"device": "cpu"}).json()
    assert body["status"] == "ok", body["stderr"]
    assert body["stdout"].strip() and body["device"] == "cpu"
    assert body["images"] and body["images"][0]["mime"] == "image/png"
    events = sse_events(real_client.get(STREAM, params={"device": "cpu"}).text)
    kinds = [kind for kind, _ in events]
    assert kinds.count("stdout") >= 2 and "image" in kinds and kinds[-1] == "done"
    assert events[-1][1]["status"] == "ok"


@pytest.mark.slow
@pytest.mark.sandbox
def test_real_burst_is_queued_or_refused_never_crashes(real_client: TestClient) -> None:
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: real_client.post(RUN, json={"device": "cpu"}),
                                  range(8)))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(200) >= 1 and codes.count(503) >= 1, codes
    assert all(r.headers["Retry-After"] for r in responses if r.status_code == 503)
    assert all(r.json()["status"] == "ok" for r in responses if r.status_code == 200)
