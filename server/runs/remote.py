"""The Celery executor, web side: runs go to worker machines through Redis (`askta worker`,
server/runs/worker.py); their events come back in a Redis stream that any web process
reads, so a run started through one server can be followed through another."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import redis
import redis.asyncio as aioredis

from server.runs import redis_keys as k
from server.runs.celery_app import TASK, make_celery
from server.runs.executor import ExecutorStatus, OnDone
from server.runs.models import TERMINAL, RunEvent, RunRequest, RunView, UnknownRun, new_run_id
from server.sandbox.errors import DeviceUnavailable, SandboxBusy, SandboxUnavailable

log = logging.getLogger("askta")
# XREAD waits this long for new events before the reader checks the run's worker is alive.
BLOCK_MS = 1000
NO_GPU_WORKER = ("No GPU worker is connected, so CUDA runs cannot start now: run the demo on "
                 "the CPU, or start one with `askta worker --device cuda` on a GPU machine.")
NO_CPU_WORKER = ("No CPU worker is connected, so demo runs cannot start now: start one with "
                 "`askta worker --device cpu` (docs/workers.md).")


class CeleryExecutor:
    """Sends runs to Celery workers and reads them back from Redis."""

    name = "celery"

    def __init__(self, redis_url: str, queue_max: int = 32, run_timeout_s: float = 20.0) -> None:
        self.redis_url, self.queue_max = redis_url, queue_max
        self.celery = make_celery(redis_url, run_timeout_s)
        self.sync: Any = redis.Redis.from_url(redis_url, decode_responses=True)
        self._finish = self.sync.register_script(k.FINISH)
        # redis.asyncio clients belong to the event loop they were first used on: one per
        # loop (an app has one; tests run several apps one after the other).
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = \
            weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- the seam -------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        return True

    @property
    def cuda_available(self) -> bool:
        try:
            return self.workers("cuda") > 0
        except redis.RedisError:
            return False

    async def submit(self, request: RunRequest, on_done: OnDone | None = None) -> RunView:
        """Queue the run on `cpu` or `gpu`; refused at once with no worker for its device,
        or with its queue full."""
        r = self._client()
        try:
            async with r.pipeline(transaction=False) as pipe:  # one round trip
                for device in ("cpu", "cuda"):
                    pipe.eval(k.WORKERS_ALIVE, 1, k.workers_key(device))
                for queue in (k.QUEUES["cpu"], k.QUEUES["cuda"]):
                    pipe.llen(queue)
                cpu_workers, gpu_workers, cpu_depth, gpu_depth = await pipe.execute()
            device = _device(request.device, cpu_workers, gpu_workers)
            queue = k.QUEUES[device]
            depth = gpu_depth if device == "cuda" else cpu_depth
            if depth >= self.queue_max:
                raise SandboxBusy(f"{depth} demo runs are waiting for a {device} worker; try "
                                  "again in a few seconds", retry_after=5)
            run_id = new_run_id()
            async with r.pipeline(transaction=True) as pipe:
                pipe.hset(k.run_key(run_id), mapping={
                    "entry_id": request.entry_id, "device": device, "status": "queued",
                    "seq": 0, "created": f"{time.time():.3f}"})
                pipe.expire(k.run_key(run_id), k.KEEP_S)
                await pipe.execute()
        except redis.RedisError as e:
            raise SandboxUnavailable(f"Redis cannot be reached ({type(e).__name__}); demo "
                                     "runs are paused until it is back") from None
        payload = {**request.to_dict(), "device": device}
        try:
            await asyncio.to_thread(self.celery.send_task, TASK, args=[run_id, payload],
                                    queue=queue)
        except Exception as e:  # the broker refused: no run was queued
            await r.delete(k.run_key(run_id))
            raise SandboxUnavailable(f"the run could not be queued ({type(e).__name__}); "
                                     "try again in a moment") from None
        if on_done is not None:
            task = asyncio.create_task(self._watch(run_id, on_done))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return RunView(id=run_id, entry_id=request.entry_id, status="queued", device=device)

    async def get(self, run_id: str) -> RunView:
        r = self._client()
        meta = await r.hgetall(k.run_key(run_id))
        if not meta:
            raise UnknownRun(run_id)
        if meta.get("status") == "running" and await self._reap(r, run_id, meta.get("worker")):
            meta = await r.hgetall(k.run_key(run_id))
        events = k.parse_entries(await r.xrange(k.events_key(run_id)))
        return RunView.build(run_id, meta.get("entry_id", ""), meta.get("status", "error"),
                             meta.get("device", "cpu"), meta.get("worker") or None, events)

    async def events(self, run_id: str, after: int = 0) -> AsyncIterator[RunEvent]:
        """The run's stream from `after` on, blocking for new events; every BLOCK_MS
        without one, the run's worker is checked (a dead one ends the run)."""
        r = self._client()
        cursor = max(0, after)
        stream = k.events_key(run_id)
        while True:
            reply = await r.xread({stream: f"0-{cursor}"}, count=100, block=BLOCK_MS)
            if reply:
                for event in k.parse_entries(reply[0][1]):
                    cursor = event.seq
                    yield event
                    if event.kind == "done":
                        return
                continue
            meta = await r.hmget(k.run_key(run_id), ["status", "worker"])
            status, worker = meta
            if status is None:
                return  # expired, or never existed
            if status == "running":
                await self._reap(r, run_id, worker)

    def has_free_runner(self, device: str = "auto") -> bool:
        try:
            return self.sync.llen(k.QUEUES["cuda" if device == "cuda" else "cpu"]) == 0
        except redis.RedisError:
            return False

    def status(self) -> ExecutorStatus:
        """Connected workers and queue depth per device; also ends runs of dead workers."""
        try:
            for run_id in self.sync.smembers(k.RUNNING):
                keys, args = k.finish_args(run_id, _lost_done(), k.lost_message(None), True)
                self._finish(keys=keys, args=args)
            return ExecutorStatus(
                self.name,
                workers={d: self.workers(d) for d in ("cpu", "cuda")},
                queue_depth={q: int(self.sync.llen(q)) for q in k.QUEUES.values()},
                running=int(self.sync.scard(k.RUNNING)))
        except redis.RedisError as e:
            return ExecutorStatus(self.name, reason=f"Redis cannot be reached: {e}")

    def workers(self, device: str) -> int:
        """Workers for `device` whose heartbeat is fresh."""
        return int(self.sync.eval(k.WORKERS_ALIVE, 1, k.workers_key(device)))

    def close(self, grace_s: float = 0.0) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.sync.close()

    # --- inside ---------------------------------------------------------------------------
    def _client(self) -> Any:
        """This event loop's client (decoded: every reply is str)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = aioredis.Redis.from_url(self.redis_url, decode_responses=True)
            self._clients[loop] = client
        return client

    async def _reap(self, r: Any, run_id: str, worker: str | None) -> bool:
        """End the run as `error` if its worker's heartbeat is gone; True if it did."""
        keys, args = k.finish_args(run_id, _lost_done(), k.lost_message(worker), True)
        ended = await r.eval(k.FINISH, len(keys), *keys, *args)
        if ended:
            log.warning("run %s: its worker %s stopped; ended as error", run_id, worker)
        return bool(ended)

    async def _watch(self, run_id: str, on_done: OnDone) -> None:
        """Follow a run this process submitted to its end, then record it."""
        try:
            async for _ in self.events(run_id):
                pass
            view = await self.get(run_id)
            if view.status in TERMINAL:
                await on_done(view)
        except Exception:  # a watcher must not take the server down
            log.exception("run %s: following it failed", run_id)


def _device(device: str, cpu_workers: int, gpu_workers: int) -> str:
    """The device a run goes to: `auto` is `cuda` when a GPU worker is connected; refused
    when no worker serves the device."""
    if device == "cuda" or (device == "auto" and gpu_workers):
        if not gpu_workers:
            raise DeviceUnavailable(NO_GPU_WORKER)
        return "cuda"
    if device not in ("auto", "cpu"):
        raise DeviceUnavailable(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'")
    if not cpu_workers:
        raise SandboxUnavailable(NO_CPU_WORKER)
    return "cpu"


def _lost_done() -> dict[str, Any]:
    return {"status": "error", "exit_code": None, "device": None, "duration_ms": 0,
            "truncated": False}
