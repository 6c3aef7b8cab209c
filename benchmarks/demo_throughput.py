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
ones (importing torch). One warm run is a one-line demo run when the pool is full
(`--refill` seconds after the previous run), so that it measures the path, not the CPU.
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


async def sequential(executor: Executor, reps: int) -> list[float]:
    done = []
    for _ in range(reps):
        await asyncio.sleep(args.refill)  # the pool refills: each run finds a warm sandbox
        done.append((await one(executor, WARM))[1])
    return done


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


def report(name: str, b: dict[str, float] | None, done: list[float] | None
           ) -> list[float] | None:
    line = (f"| {name} | {b['runs_per_s']:.2f} | {b['wait_p50']:.0f} | {b['wait_p99']:.0f} | "
            f"{int(b['ok'])}/{args.burst} |") if b else f"| {name} | – | – | – | – |"
    if done:
        line += f" {pct(done, 50):.0f} | {pct(done, 99):.0f} |"
    else:
        line += " – | – |"
    print(line, flush=True)
    return done


async def main() -> None:
    settings = Settings()
    cfg = replace(settings.sandbox_config(), pool_size=args.pool, gpu_pool_size=0,
                  max_concurrent=args.pool, queue_size=args.burst)
    print(f"{os.cpu_count()} CPUs; burst of {args.burst} runs; {args.reps} sequential warm "
          f"runs {args.refill:g} s apart; pool {args.pool} per executor or worker\n")
    print("| executor | runs/s | wait p50 ms | wait p99 ms | ok | one warm run p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    with SandboxRunner(cfg) as runner:
        runner.start()
        assert runner.pool is not None and runner.pool.wait_until_full(180)
        local = LocalExecutor(lambda: runner)
        local_burst = await burst(local, args.burst) if not args.warm_only else None
        local_done = report("local", local_burst, await sequential(local, args.reps))
    with redis_server(args.redis_url) as url:
        for count in (1,) if args.warm_only else (1, 2):
            with workers(url, count, args.pool):
                celery = CeleryExecutor(url, queue_max=args.burst)
                await asyncio.sleep(2)  # the worker's pool is full
                b = await burst(celery, args.burst) if not args.warm_only else None
                done = await sequential(celery, args.reps) if count == 1 else None
                report(f"celery, {count} worker{'s' * (count > 1)}", b, done)
                if done and local_done:
                    print(f"\nCelery adds {pct(done, 50) - pct(local_done, 50):.1f} ms at p50 "
                          f"to one warm run ({pct(local_done, 50):.0f} ms local, "
                          f"{pct(done, 50):.0f} ms through Celery)\n")
                celery.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--pool", type=int, default=2)
    parser.add_argument("--refill", type=float, default=4.0,
                        help="seconds between the sequential runs, for the pool to refill")
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--warm-only", action="store_true",
                        help="only the one-warm-run comparison (local against one worker)")
    args = parser.parse_args()
    asyncio.run(main())
