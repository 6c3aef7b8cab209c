"""`askta worker`: a Celery worker that holds a warm sandbox pool and runs demos sent by
the web servers, publishing each run's events to Redis (server/runs/redis_keys.py).

One process per machine and device: Celery's thread pool, `pool` threads, and as many
warm sandboxes. A heartbeat thread keeps the worker listed as connected and each of
its runs alive; it also ends, as lost, runs whose own worker has stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
from typing import Any

import redis

from server.runs import redis_keys as k
from server.runs.celery_app import TASK, make_celery
from server.runs.models import RunRequest, done_data, event_data
from server.sandbox import DeviceUnavailable, SandboxError, SandboxRunner
from server.sandbox.models import SandboxConfig

log = logging.getLogger("askta.worker")


class RunWorker:
    """The warm pool, the Redis side of each run, and the heartbeats of one worker."""

    def __init__(self, cfg: SandboxConfig, device: str, pool: int, redis_url: str) -> None:
        if device not in k.QUEUES:
            raise DeviceUnavailable(f"unknown device {device!r}: use 'cpu' or 'cuda'")
        self.device, self.pool, self.redis_url = device, max(1, pool), redis_url
        self.queue = k.QUEUES[device]
        self.name = f"askta-{device}-{os.getpid()}@{socket.gethostname()}"
        cuda = device == "cuda"
        self.runner = SandboxRunner(dataclasses.replace(
            cfg, pool_size=0 if cuda else self.pool, gpu_pool_size=self.pool if cuda else 0,
            max_concurrent=self.pool, queue_size=self.pool))
        self.redis: Any = redis.Redis.from_url(redis_url, decode_responses=True)
        self._start = self.redis.register_script(k.START)
        self._append = self.redis.register_script(k.APPEND)
        self._finish = self.redis.register_script(k.FINISH)
        self._beat = self.redis.register_script(k.WORKER_BEAT)
        self._mine: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> None:
        """The sandbox can run here, and for `cuda` CUDA works in it (else the reason)."""
        self.runner.check()
        if self.device == "cuda":
            problem = self.runner.cuda_problem()
            if problem:
                raise DeviceUnavailable(problem)

    def start(self) -> None:
        """Start the warm pool, wait for it, then announce this worker."""
        self.runner.start()
        pool = self.runner.pool
        if pool is not None:
            pool.wait_until_full(self.runner.cfg.ready_timeout_s)
        self.heartbeat()
        self._thread = threading.Thread(target=self._beat_loop, name="askta-heartbeat",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the heartbeats, leave the worker list, and stop the pool."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            self.redis.zrem(k.workers_key(self.device), self.name)
        except redis.RedisError:
            pass
        self.runner.close()
        self.redis.close()

    # --- a run ----------------------------------------------------------------------------
    def execute(self, run_id: str, payload: dict[str, Any]) -> str:
        """Run one request, publishing its events; returns the final status, or
        'skipped' when the run is not queued any more (ended as lost, or taken)."""
        if not self._start(keys=[k.run_key(run_id), k.alive_key(run_id), k.RUNNING],
                           args=[self.name, k.ALIVE_TTL_S, run_id]):
            return "skipped"
        request = RunRequest.from_dict(payload)
        with self._lock:
            self._mine.add(run_id)
        done: dict[str, Any] | None = None
        stderr: str | None = None
        try:
            for event in self.runner.stream(request.code, request.device,
                                             filename=request.filename):
                if event.kind == "done":
                    done = done_data(event.data)
                    break
                self._append(keys=[k.run_key(run_id), k.events_key(run_id)],
                             args=[event.kind, json.dumps(event_data(event.kind, event.data))])
        except SandboxError as e:
            log.error("run %s: %s", run_id, e)
            stderr = f"The sandbox failed during the run: {e}"
        except Exception as e:  # the run ends as error, whatever happened
            log.exception("run %s failed", run_id)
            stderr = f"The worker failed during the run: {type(e).__name__}"
        finally:
            with self._lock:
                self._mine.discard(run_id)
        if done is None:
            done = {"status": "error", "exit_code": None, "device": self.device,
                    "duration_ms": 0, "truncated": False}
            stderr = stderr or "The sandbox ended the run without a result."
        keys, args = k.finish_args(run_id, done, stderr, False)
        self._finish(keys=keys, args=args)
        return str(done["status"])

    # --- heartbeats -----------------------------------------------------------------------
    def heartbeat(self) -> None:
        """Refresh this worker's entry and its runs' alive keys; end lost runs."""
        self._beat(keys=[k.workers_key(self.device)], args=[self.name, k.WORKER_TTL_S])
        with self._lock:
            mine = list(self._mine)
        for run_id in mine:
            self.redis.set(k.alive_key(run_id), self.name, xx=True, ex=k.ALIVE_TTL_S)
        for run_id in self.redis.smembers(k.RUNNING):
            if run_id in mine:
                continue
            keys, args = k.finish_args(run_id, {"status": "error", "exit_code": None,
                                                "device": None, "duration_ms": 0,
                                                "truncated": False},
                                       k.lost_message(self.redis.hget(k.run_key(run_id),
                                                                      "worker")), True)
            if self._finish(keys=keys, args=args):
                log.warning("run %s: its worker stopped; ended as error", run_id)

    def _beat_loop(self) -> None:
        while not self._stop.wait(k.HEARTBEAT_S):
            try:
                self.heartbeat()
            except redis.RedisError as e:
                log.warning("heartbeat failed: %s", e)

    # --- Celery ---------------------------------------------------------------------------
    def serve(self) -> None:
        """Consume this device's queue until stopped (SIGTERM/SIGINT: a warm shutdown)."""
        app = make_celery(self.redis_url, self.runner.cfg.limits.timeout_s)

        @app.task(name=TASK, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
        def run(run_id: str, payload: dict[str, Any]) -> str:
            return self.execute(run_id, payload)

        app.worker_main(["worker", "--pool=threads", f"--concurrency={self.pool}",
                         f"--queues={self.queue}", f"--hostname={self.name}",
                         "--without-gossip", "--without-mingle", "--without-heartbeat",
                         "--prefetch-multiplier=1", "--loglevel=INFO"])
