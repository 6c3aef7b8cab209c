"""Students tinkering with a demo through POST /api/runs: other values of its declared
parameters (checked, written into a copy of the code), or their own edit of the code;
each run logged with its kind for /admin/stats. A fake runner records the code it was
given; the test marked `sandbox` runs real demos."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.accounts import Accounts
from server.config import Settings
from server.runs import runs_in_flight
from server.services import Services
from server.web.app import create_app
from server.web.demo_runs import submit_demo
from tests.web.test_routes_demos import FakeRunner
from tests.web.test_routes_runs import wait_done

ENTRY = "mse-vs-outliers"  # demos/mse_vs_outliers.py declares SEED, SAMPLE_SIZE, ...


def run(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/api/runs", json={"entry_id": ENTRY, "device": "cpu", **body})
    assert r.status_code == 202, r.text
    return wait_done(client, r.json()["id"])


def test_params_are_written_into_a_copy_of_the_demo(run_client: TestClient, runner: FakeRunner,
                                                    services: Services) -> None:
    demo = services.kb.demo_path(services.kb.get(ENTRY))
    assert demo is not None
    source = demo.read_text()
    assert run(run_client, params={"OUTLIER_STD": 25, "SAMPLE_SIZE": 7})["status"] == "ok"
    code = runner.calls[-1][0]
    assert "\nOUTLIER_STD = 25.0  # askta: param(" in code
    assert "\nSAMPLE_SIZE = 7  # askta: param(" in code
    changed = [a for a, b in zip(source.splitlines(), code.splitlines(), strict=True)
               if a != b]
    assert [line.split(" =")[0] for line in changed] == ["SAMPLE_SIZE", "OUTLIER_STD"]
    assert demo.read_text() == source  # the file itself is never touched


@pytest.mark.parametrize(("params", "message"), [
    ({"OUTLIER_STD": 500}, "params.OUTLIER_STD: must be between 1.0 and 50.0"),
    ({"SAMPLE_SIZE": 8}, "params.SAMPLE_SIZE: must be 5 plus a multiple of 2"),
    ({"SAMPLE_SIZE": "7"}, "params.SAMPLE_SIZE: must be a whole number"),
    ({"GRID_STEP": 0.5}, "params.GRID_STEP: this demo has no parameter 'GRID_STEP'"),
    ({"os.system('x')": 1}, "this demo has no parameter"),
])
def test_params_outside_the_declaration_are_422_naming_the_field(
        run_client: TestClient, runner: FakeRunner, params: dict[str, Any], message: str) -> None:
    r = run_client.post("/api/runs", json={"entry_id": ENTRY, "params": params})
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]["message"]
    assert runner.calls == []


def test_edited_code_runs_instead_of_the_demo_and_may_move_its_own_params(
        run_client: TestClient, runner: FakeRunner) -> None:
    code = "N = 3  # askta: param(min=1, max=9)\nprint('edited', N)\n"
    assert run(run_client, code=code)["status"] == "ok"
    assert runner.calls[-1][0] == code
    run(run_client, code=code, params={"N": 8})
    assert runner.calls[-1][0].startswith("N = 8  # askta: param")
    r = run_client.post("/api/runs", json={"entry_id": ENTRY, "code": code, "params": {"N": 10}})
    assert r.status_code == 422 and "params.N: must be between 1 and 9" in r.text


def test_edited_code_over_20_kb_is_refused(run_client: TestClient, runner: FakeRunner) -> None:
    big = "# " + "é" * 10_300 + "\n"  # under 20,480 characters, over 20 KB in UTF-8
    r = run_client.post("/api/runs", json={"entry_id": ENTRY, "code": big})
    assert r.status_code == 422 and "at most 20 KB" in r.json()["error"]["message"]
    r = run_client.post("/api/runs", json={"entry_id": ENTRY, "code": "x" * 30_000})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid"
    assert runner.calls == []


def test_only_the_demo_as_written_is_cached_for_the_page(run_client: TestClient,
                                                        services: Services) -> None:
    run(run_client, params={"SEED": 5})
    run(run_client, code="print('mine')\n")
    assert run_client.get(f"/api/entries/{ENTRY}").json()["demo"]["last_run"] is None
    run(run_client)
    assert run_client.get(f"/api/entries/{ENTRY}").json()["demo"]["last_run"] is not None


def test_stats_show_what_students_tried(settings: Settings, services: Services) -> None:
    services.sandbox = FakeRunner()  # type: ignore[assignment]
    with TestClient(create_app(settings, services=services)) as c:
        run(c)
        run(c, params={"SEED": 3})
        run(c, params={"SEED": 4})
        services.sandbox = FakeRunner(status="error")  # type: ignore[assignment]
        run(c, code="raise ValueError('boom')\n")
        run(c, code="raise ValueError('boom')  # again\n")
        deadline = time.monotonic() + 5
        while services.store.summary()["demo_runs"] < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        accounts = Accounts(services.store)
        accounts.add("ian", "instructor", None)
        token = accounts.issue_token("ian")
        stats = c.get("/api/admin/stats", headers={"Authorization": f"Bearer {token}"}).json()
    row = next(r for r in stats["tinkering"] if r["entry_id"] == ENTRY)
    assert (row["demo"], row["params"], row["edit"], row["edit_failed"]) == (1, 2, 2, 2)
    assert row["failures"] == [{"failure": "ValueError: boom", "count": 2}]


@pytest.mark.sandbox
@pytest.mark.slow
def test_a_parameter_changes_what_the_student_sees(settings: Settings,
                                                   services: Services) -> None:
    """Real sandbox: a bigger outlier spread moves the printed spread of the mean."""
    from server.sandbox import SandboxRunner

    runner = SandboxRunner(settings.model_copy(update={"sandbox_enabled": True,
                                                       "sandbox_pool_size": 1})
                           .sandbox_config())
    runner.check()
    runner.start()
    services.sandbox = runner
    try:
        with TestClient(create_app(settings, services=services)) as c:
            small = run(c, params={"OUTLIER_STD": 2.0})
            large = run(c, params={"OUTLIER_STD": 40.0})
    finally:
        runner.close()
    assert small["status"] == large["status"] == "ok", small["stderr"] + large["stderr"]
    assert small["stdout"] != large["stdout"]


def test_asking_a_ta_about_an_edited_run_queues_the_question_code_and_output(
        run_client: TestClient, services: Services) -> None:
    code = "print('mine')\n"
    r = run_client.post("/api/runs", json={"entry_id": ENTRY, "device": "cpu", "code": code})
    run_id = r.json()["id"]
    wait_done(run_client, run_id)
    question = "why does my version print only one line?"
    r = run_client.post(f"/api/runs/{run_id}/ask", json={"question": question, "code": code})
    assert r.status_code == 200, r.text
    review_id = r.json()["review_id"]
    accounts = Accounts(services.store)
    accounts.add("tess", "ta", None)
    token = accounts.issue_token("tess")
    groups = run_client.get("/api/review", headers={"Authorization": f"Bearer {token}"}).json()
    item = next(i for g in groups["groups"] for i in g["items"] if i["id"] == review_id)
    assert (item["text"], item["reason"], item["entry_id"]) == (question, "demo_question",
                                                                ENTRY)
    attachment = item["attachment"]
    assert attachment["code"] == code and attachment["run_id"] == run_id
    assert attachment["status"] == "ok" and attachment["stdout"] == "step 1\nstep 2\n"
    assert run_client.post("/api/runs/nope/ask", json={"question": "x"}).status_code == 404
    assert run_client.post(f"/api/runs/{run_id}/ask", json={"question": " "}).status_code == 422


def test_edited_code_has_its_own_lower_rate_limit(settings: Settings,
                                                  services: Services) -> None:
    services.sandbox = FakeRunner()  # type: ignore[assignment]
    services.rate_limits = type(services.rate_limits).from_settings(
        settings.model_copy(update={"edit_rate_limit": "1/minute"}))
    with TestClient(create_app(settings, services=services)) as c:
        run(c, code="print(1)\n")
        r = c.post("/api/runs", json={"entry_id": ENTRY, "code": "print(2)\n"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
        run(c, params={"SEED": 1})  # runs of the demo itself are not held back by it


def test_a_client_may_have_only_so_many_runs_going(settings: Settings,
                                                   services: Services) -> None:
    services.sandbox = FakeRunner(delay_s=1.5)  # type: ignore[assignment]
    with TestClient(create_app(settings, services=services)) as c:
        ids = [c.post("/api/runs", json={"entry_id": ENTRY, "device": "cpu"}).json()["id"]
               for _ in range(2)]
        r = c.post("/api/runs", json={"entry_id": ENTRY, "device": "cpu"})
        assert r.status_code == 429 and "already have 2 runs going" in r.text
        assert r.headers["Retry-After"] == "2"
        for run_id in ids:
            assert wait_done(c, run_id)["status"] == "ok"
        deadline = time.monotonic() + 5
        while services.runs_in_flight.count("testclient") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert run(c)["status"] == "ok"


@pytest.mark.parametrize("shared", [False, True], ids=["in memory", "in redis"])
def test_a_run_cancelled_before_it_started_gives_its_place_back(
        settings: Settings, services: Services, shared: bool, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A request cancelled while its run is being submitted (a client gone, a shutdown)
    does not keep counting against the client."""
    if shared:
        services.runs_in_flight = runs_in_flight(2, request.getfixturevalue("redis_url"),
                                                 ttl_s=60)
    services.sandbox = FakeRunner(delay_s=0.1)  # type: ignore[assignment]

    async def never_submitted(*args: object) -> None:
        await asyncio.sleep(3600)

    monkeypatch.setattr(services.runs, "submit", never_submitted)

    async def cancel_one() -> None:
        task = asyncio.create_task(submit_demo(services, ENTRY, "cpu", client="c"))
        await asyncio.sleep(0.3)
        assert services.runs_in_flight.count("c") == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + 5
        while services.runs_in_flight.count("c") and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    asyncio.run(cancel_one())
    assert services.runs_in_flight.count("c") == 0
