"""Demo runs through each executor: a burst of 20 runs (runs per second, and how long
each waited for a runner), and what the Celery path adds to one warm run.

    .venv/bin/python benchmarks/demo_throughput.py [--burst 20] [--reps 30] [--pool 2]
        [--redis-url redis://127.0.0.1:6379/9]

Executors: `local` (this process's warm pool, `--pool` sandboxes and as many runs at
once), then Celery with one `askta worker --pool N` and with two. Without --redis-url
a private `redis-server` is started on a free loopback port. Every run goes through
the executor seam as the API's do (`submit`, then its events to `done`), with the
demo of benchmarks/demo_latency.py (200 SGD steps) in the burst. "wait" is the time from
submit to the run's first event; "done" the time from submit to its end. Each run takes
one single-use sandbox, so a burst's throughput is bound by how fast the pool starts new
ones (importing torch). One warm run is a one-line demo run when the pools are full
(`--refill` seconds after the previous pair), local and Celery in turn, so that both see
the same machine: the difference is the path, not the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from demo_latency import DEMO  # noqa: E402

from server.config import Settings  # noqa: E402
from server.runs import Executor, RunRequest  # noqa: E402
from server.runs import redis_keys as k  # noqa: E402
from server.runs.local import LocalExecutor  # noqa: E402
from server.runs.remote import CeleryExecutor  # noqa: E402
from server.sandbox import SandboxRunner  # noqa: E402


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of `values`, in ms."""
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


WARM = 'print("hello")\n'


async def one(executor: Executor, code: str = DEMO) -> tuple[float, float, str]:
    """(wait, done) in seconds for one run, and its status."""
    t0 = time.perf_counter()
    run = await executor.submit(RunRequest(entry_id="bench", code=code, device="cpu"))
    first = None
    status = "?"
    async for event in executor.events(run.id):
        if first is None:
            first = time.perf_counter() - t0
        if event.kind == "done":
            status = str(event.data.get("status"))
    return first or 0.0, time.perf_counter() - t0, status


async def burst(executor: Executor, n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    results = await asyncio.gather(*(one(executor) for _ in range(n)))
    wall = time.perf_counter() - t0
    waits = [w for w, _, _ in results]
    ok = sum(s == "ok" for _, _, s in results)
    return {"runs_per_s": n / wall, "wait_p50": pct(waits, 50), "wait_p99": pct(waits, 99),
            "ok": ok, "wall_s": wall}


@contextlib.contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if not binary:
        sys.exit("redis-server is not installed (apt-get install redis-server), "
                 "or pass --redis-url")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="askta-bench-redis-")
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--dir",
                             folder, "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def workers(url: str, count: int, pool: int) -> Iterator[None]:
    env = {**os.environ, "ASKTA_REDIS_URL": url}
    procs = [subprocess.Popen([sys.executable, "-m", "server.cli.main", "worker", "--device",
                               "cpu", "--pool", str(pool)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(count)]
    import redis

    r = redis.Redis.from_url(url)
    deadline = time.monotonic() + 180
    while int(r.eval(k.WORKERS_ALIVE, 1, k.workers_key("cpu"))) < count:  # type: ignore[arg-type]
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            sys.exit("the workers did not start")
        time.sleep(0.2)
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        r.flushdb()
        r.close()


async def warm_pairs(local: Executor, celery: Executor, reps: int) -> tuple[list[float],
                                                                            list[float]]:
    """One warm run on each executor in turn, `reps` times: both see the same machine."""
    local_done: list[float] = []
    celery_done: list[float] = []
    for i in range(reps):
        await asyncio.sleep(args.refill)  # both pools refill: each run finds a warm sandbox
        pair = [(local, local_done), (celery, celery_done)]
        for executor, out in pair if i % 2 == 0 else pair[::-1]:
            out.append((await one(executor, WARM))[1])
    return local_done, celery_done


async def main() -> None:
    settings = Settings()
    cfg = replace(settings.sandbox_config(), pool_size=args.pool, gpu_pool_size=0,
                  max_concurrent=args.pool, queue_size=args.burst)
    print(f"{os.cpu_count()} CPUs; burst of {args.burst} runs; pool {args.pool} per "
          f"executor or worker\n")
    results: dict[str, dict[str, float]] = {}
    with redis_server(args.redis_url) as url:
        with SandboxRunner(cfg) as runner:
            runner.start()
            assert runner.pool is not None and runner.pool.wait_until_full(180)
            local = LocalExecutor(lambda: runner)
            if not args.warm_only:
                results["local"] = await burst(local, args.burst)
            with workers(url, 1, args.pool):
                celery = CeleryExecutor(url, queue_max=args.burst)
                if not args.warm_only:
                    await asyncio.sleep(args.refill)
                    results["celery, 1 worker"] = await burst(celery, args.burst)
                local_done, celery_done = await warm_pairs(local, celery, args.reps)
                celery.close()
        if not args.warm_only:
            with workers(url, 2, args.pool):
                celery = CeleryExecutor(url, queue_max=args.burst)
                results["celery, 2 workers"] = await burst(celery, args.burst)
                celery.close()
    if results:
        print("| executor | runs/s | wait p50 ms | wait p99 ms | ok |")
        print("|---|---|---|---|---|")
        for name, b in results.items():
            print(f"| {name} | {b['runs_per_s']:.2f} | {b['wait_p50']:.0f} | "
                  f"{b['wait_p99']:.0f} | {int(b['ok'])}/{args.burst} |")
    extra = [c - lo for lo, c in zip(local_done, celery_done, strict=True)]
    print(f"\none warm run, {args.reps} pairs {args.refill:g} s apart, submit to done: local "
          f"p50 {pct(local_done, 50):.1f} ms (p99 {pct(local_done, 99):.0f}), Celery p50 "
          f"{pct(celery_done, 50):.1f} ms (p99 {pct(celery_done, 99):.0f}); Celery adds "
          f"{pct(extra, 50):.1f} ms at p50 (pairwise)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--pool", type=int, default=2)
    parser.add_argument("--refill", type=float, default=3.0,
                        help="seconds between the sequential runs, for the pool to refill")
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--warm-only", action="store_true",
                        help="only the one-warm-run comparison (local and one worker in turn)")
    args = parser.parse_args()
    asyncio.run(main())
