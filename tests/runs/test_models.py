"""A run's plain data: the request every executor passes through whole, and the view
built from a run's events."""

from __future__ import annotations

from server.runs.models import RunEvent, RunRequest, RunView, failure_events


def test_a_request_travels_whole_and_tolerates_newer_senders() -> None:
    request = RunRequest(entry_id="e", code="print(1)\n", device="cuda", filename="x.py",
                         params={"lr": 0.1})
    assert RunRequest.from_dict(request.to_dict()) == request
    assert RunRequest.from_dict({**request.to_dict(), "seed": 3}) == request


def test_the_view_joins_output_and_takes_the_result_from_done() -> None:
    events = [RunEvent(1, "stdout", {"text": "a\n"}), RunEvent(2, "stderr", {"text": "w\n"}),
              RunEvent(3, "image", {"mime": "image/png", "data_base64": "AA=="}),
              RunEvent(4, "stdout", {"text": "b\n"}),
              RunEvent(5, "done", {"status": "timeout", "exit_code": None, "device": "cpu",
                                   "duration_ms": 2000})]
    view = RunView.build("r", "e", "running", "auto", "w1", events)
    assert (view.status, view.stdout, view.stderr, view.duration_ms) == \
        ("timeout", "a\nb\n", "w\n", 2000)
    assert view.images == [{"mime": "image/png", "data_base64": "AA=="}] and view.finished
    assert view.device == "cpu"
    running = RunView.build("r", "e", "running", "cpu", "w1", events[:2])
    assert running.status == "running" and not running.finished and running.exit_code is None


def test_a_lost_run_ends_with_its_reason_then_done() -> None:
    (kind1, data1), (kind2, data2) = failure_events("the worker stopped", "cpu")
    assert (kind1, data1) == ("stderr", {"text": "the worker stopped\n"})
    assert kind2 == "done" and data2["status"] == "error"
