"""Chat latency while sandboxed code spins every core: does the server stay responsive?

Starts `askta`'s app with uvicorn in a subprocess on 127.0.0.1 (a private copy of
the KB, rate limits off, the sandbox off in the server), and measures POST
/api/chat one request at a time:

1. idle: nothing else running;
2. hostile: while two sandboxed programs run in this process's own sandbox
   runner, with the same bubblewrap, limits and priority as demo runs: a busy
   loop on every core (one process per CPU) and a fork bomb. Each is restarted
   as soon as a limit stops it, so both keep the cores busy for the whole phase.

Sandboxes run at nice 19 and SCHED_IDLE (server/sandbox/bwrap.py, low_priority),
and, where the host lets the server create cgroups, in a cpu cgroup with the lowest
weight and the idle policy (server/sandbox/cgroups.py): the target is a hostile p50
within 2x of the idle p50. Prints both phases' p50 and p99 and the ratio;
`--no-priority` runs the hostile phase without any of the low priority, to show what
it buys.

Run: .venv/bin/python benchmarks/cpu_priority.py [--seconds 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.http_load import (  # noqa: E402
    free_port,
    questions,
    start_server,
    stop_server,
    wait_ready,
)
from server.config import Settings  # noqa: E402
from server.sandbox import SandboxRunner  # noqa: E402
from server.sandbox import bwrap as sandbox_bwrap  # noqa: E402
from server.sandbox import cgroups as sandbox_cgroups  # noqa: E402

BUSY_LOOP = """
import os
for _ in range((os.cpu_count() or 2) - 1):
    if os.fork() == 0:
        break
while True:
    pass
"""
FORK_BOMB = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""
PROGRAMS = {"busy loop": BUSY_LOOP, "fork bomb": FORK_BOMB}


def chat_latencies(base: str, qs: list[str], seconds: float) -> list[float]:
    """One question at a time for `seconds`; the latency of each, in ms."""
    out: list[float] = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base, timeout=60) as client:
        i = 0
        while time.monotonic() < deadline:
            t = time.perf_counter()
            r = client.post("/api/chat", json={"message": qs[i % len(qs)]})
            out.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
            i += 1
    return out


def summary(latencies: list[float]) -> dict[str, Any]:
    return {"requests": len(latencies),
            "p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "p99_ms": round(float(np.percentile(latencies, 99)), 2),
            "mean_ms": round(statistics.fmean(latencies), 2)}


class Hostile:
    """Keeps two hostile programs running in the sandbox until stopped."""

    def __init__(self, runner: SandboxRunner, timeout_s: float, programs: dict[str, str]):
        self.runner, self.timeout_s = runner, timeout_s
        self.stop = threading.Event()
        self.outcomes: dict[str, list[str]] = {name: [] for name in programs}
        self.threads = [threading.Thread(target=self._loop, args=(name, code), daemon=True)
                        for name, code in programs.items()]

    def _loop(self, name: str, code: str) -> None:
        limits = self.runner.cfg.limits.but(timeout_s=self.timeout_s, cpu_s=600)
        while not self.stop.is_set():
            result = self.runner.run(code, "cpu", limits)
            self.outcomes[name].append(result.status)

    def __enter__(self) -> Hostile:
        for t in self.threads:
            t.start()
        time.sleep(2.0)  # both are spinning before the measurement starts
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(self.timeout_s + 30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="time per phase")
    ap.add_argument("--no-priority", action="store_true",
                    help="run the hostile programs at normal priority (for comparison)")
    ap.add_argument("--only", choices=sorted(PROGRAMS),
                    help="run one of the two hostile programs (to see what each costs)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    if args.no_priority:
        sandbox_bwrap.low_priority = lambda: []  # type: ignore[assignment]
        sandbox_cgroups._lowest_cpu_weight = lambda d: None  # type: ignore[assignment]

    qs = questions()
    settings = Settings()
    runner = SandboxRunner(replace(settings.sandbox_config(), pool_size=2, preload_torch=False,
                                   max_concurrent=2))
    runner.check()
    runner.start()
    report_cgroups = next((n for n in runner.notes if "cgroup" in n), "no cgroup note")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    report: dict[str, Any] = {"cpus": os.cpu_count(), "low_priority": not args.no_priority,
                              "cgroups": report_cgroups}
    try:
        with tempfile.TemporaryDirectory(prefix="askta-prio-") as tmp:
            proc = start_server(Path(tmp), port, sandbox=False, encoder="auto")
            try:
                import uvloop

                uvloop.run(wait_ready(base, proc))
                chat_latencies(base, qs, 3.0)  # warm-up
                report["idle"] = summary(chat_latencies(base, qs, args.seconds))
                programs = {args.only: PROGRAMS[args.only]} if args.only else PROGRAMS
                with Hostile(runner, args.seconds + 10, programs) as hostile:
                    report["hostile"] = summary(chat_latencies(base, qs, args.seconds))
                report["hostile_runs"] = hostile.outcomes
            finally:
                stop_server(proc)
    finally:
        runner.close()
    report["p50_ratio"] = round(report["hostile"]["p50_ms"] / report["idle"]["p50_ms"], 2)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    i, h = report["idle"], report["hostile"]
    print(f"chat, one at a time, {report['cpus']} CPUs; sandbox at "
          f"{'nice 19 + SCHED_IDLE' if report['low_priority'] else 'normal priority'}; "
          f"{report['cgroups']}")
    print(f"  idle:    p50 {i['p50_ms']:.1f} ms, p99 {i['p99_ms']:.1f} ms "
          f"({i['requests']} requests)")
    print(f"  hostile: p50 {h['p50_ms']:.1f} ms, p99 {h['p99_ms']:.1f} ms ({h['requests']} "
          f"requests) while {' and '.join(report['hostile_runs'])} ran")
    print(f"  p50 ratio: {report['p50_ratio']:.2f}x (target: at most 2x)")


if __name__ == "__main__":
    main()
