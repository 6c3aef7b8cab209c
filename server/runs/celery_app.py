"""The Celery application both sides share: web servers send runs, workers execute them.

Redis is the broker (ASKTA_REDIS_URL). A run's message is acknowledged only after the
run (`task_acks_late`), and each worker thread reserves one message at a time
(`worker_prefetch_multiplier=1`), so runs waiting in a queue stay there for whichever
worker is free. Redis redelivers a message a worker took but never acknowledged (it
was killed) after `visibility_timeout`; by then the run has been ended as lost (a
heartbeat, server/runs/redis_keys.py) and the repeated message does nothing. No result
backend: a run's events and result live in Redis under the run's own keys.
"""

from __future__ import annotations

from celery import Celery

TASK = "askta.run"


def visibility_timeout_s(run_timeout_s: float) -> int:
    """Longer than any run (its time limit plus a sandbox start), so that Redis never
    hands a message that is still running to a second worker; bounded, so that a message
    reserved by a killed worker is redelivered within minutes."""
    return int(max(60.0, 3 * run_timeout_s + 30))


def make_celery(redis_url: str, run_timeout_s: float = 20.0) -> Celery:
    """The askta Celery app on `redis_url`."""
    app = Celery("askta", broker=redis_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": visibility_timeout_s(run_timeout_s)},
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue="cpu",
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app
