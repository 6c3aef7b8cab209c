"""HTTP load on POST /api/chat, beside the bare encode of one query, plus a demo-run burst.

Starts `askta`'s app with uvicorn in a subprocess on 127.0.0.1 (a free port,
a private copy of the KB and a temporary data folder, rate limits off), then
for each concurrency level sends questions for a bounded time and count and
prints p50/p99 latency, throughput and errors. The bare encode time of one
query, with the same model on the same runtime as the server (ONNX Runtime or
PyTorch, --encoder), is measured in this process. Concurrency 1, which is
compared with it, runs in short slices that alternate with slices of bare
encodes, so that both see the same machine: on a shared VM the speed of an
encode drifts by tens of percent within a minute.

The load comes from a small HTTP/1.1 keep-alive client on asyncio streams in
this process, on uvloop as the server is: it shares the 2 cores with the
server, so it is kept lean (httpx spends about 1 ms of CPU per request, which
the server would lose, and the default event loop about 0.2 ms more than uvloop).
Nothing leaves the loopback interface; the whole run takes at most about 60 s
of load (plus server start-up).

--mixed 60 instead runs chat at concurrency 32 for 60 s while demo runs keep
arriving (--demo-clients clients, each starting a run as soon as its last one
ends), with the sandbox on, and reports p50/p99 of both and every error: the
only ones allowed are 429 and 503 that carry Retry-After.

Run: .venv/bin/python benchmarks/http_load.py [--levels 1,8,32] [--seconds 15]
     [--max-requests 3000] [--encoder auto|onnx|torch] [--demos 24] [--json]
     .venv/bin/python benchmarks/http_load.py --mixed 60 [--demo-clients 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvloop

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from indexer.embedders import load_embedder  # noqa: E402

TOTAL_LOAD_BUDGET_S = 60.0
FALLBACK_QUESTIONS = [
    "why do we need relu", "is the gradient zero at the end of training",
    "how big is the weight matrix of nn.Linear", "when is the homework due",
    "what is the capital of italy", "how do I pad sequences of different length",
    "why not use more layers", "can a tensor share memory with numpy",
]


def questions() -> list[str]:
    """The dev-set questions when present (a realistic mix), else a fixed list."""
    path = REPO.parent / "shared" / "data" / "dev_questions.yaml"
    if path.is_file():
        from ruamel.yaml import YAML

        items = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
        qs = [str(item["q"]) for item in items if isinstance(item, dict) and item.get("q")]
        if qs:
            return qs
    return FALLBACK_QUESTIONS


class BareEncoder:
    """The bundled model on the server's runtime, in this process, timing one query at a time."""

    def __init__(self, encoder: str):
        self.embedder = load_embedder("", encoder).inner  # type: ignore[attr-defined]
        self.runtime: str = self.embedder.runtime
        self.samples: list[float] = []
        self.sample(FALLBACK_QUESTIONS, len(FALLBACK_QUESTIONS), keep=False)  # warm-up

    def sample(self, qs: list[str], n: int, keep: bool = True) -> None:
        for i in range(n):
            t = time.perf_counter()
            self.embedder.embed([qs[(len(self.samples) + i) % len(qs)]])
            if keep:
                self.samples.append((time.perf_counter() - t) * 1000)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.samples, q))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(workdir: Path, port: int, sandbox: bool,
                 encoder: str) -> subprocess.Popen[bytes]:
    """uvicorn serving the app factory on 127.0.0.1, configured through ASKTA_* variables."""
    shutil.copytree(REPO / "kb", workdir / "kb")
    shutil.copytree(REPO / "demos", workdir / "demos")
    env = {**os.environ, "ASKTA_KB_DIR": str(workdir / "kb"),
           "ASKTA_DATA_DIR": str(workdir / "data"), "ASKTA_CHAT_RATE_LIMIT": "off",
           "ASKTA_DEMO_RATE_LIMIT": "off", "ASKTA_SANDBOX_ENABLED": str(sandbox).lower(),
           "ASKTA_SECRET_KEY": "benchmark-only-session-key-of-48-characters-long",
           "ASKTA_ENCODER": encoder, "ASKTA_LOG_LEVEL": "WARNING",
           "PYTHONUNBUFFERED": "1"}
    # The server's log goes to a file: a pipe nobody reads would fill up under load and
    # stop the server at its next log line.
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 (the server holds it open)
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "server.web.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the server has not stopped within 15 s."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


async def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited during start-up (exit code "
                                 f"{proc.returncode}); its log is server.log in the "
                                 "temporary folder")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("the server did not become ready in time")


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads the whole reply."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.headers: dict[str, str] = {}  # of the last reply

    async def post_json(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        self.writer.write(head.encode() + body)
        status_line, *lines = (await self.reader.readuntil(b"\r\n\r\n")).decode(
            "latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        self.headers = headers
        await self.reader.readexactly(int(headers.get("content-length", 0)))
        if headers.get("connection") == "close":
            self.close()
        return int(status_line.split()[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Tally:
    """Latencies and outcomes of the requests of one concurrency level."""

    def __init__(self, concurrency: int):
        self.concurrency = concurrency
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.seconds = 0.0

    def report(self) -> dict[str, Any]:
        ok = self.statuses.get("200", 0)
        return {
            "concurrency": self.concurrency, "requests": len(self.latencies),
            "seconds": round(self.seconds, 2),
            "p50_ms": round(float(np.percentile(self.latencies, 50)), 2),
            "p99_ms": round(float(np.percentile(self.latencies, 99)), 2),
            "mean_ms": round(statistics.fmean(self.latencies), 2),
            "throughput_rps": round(len(self.latencies) / self.seconds, 1),
            "errors": len(self.latencies) - ok, "statuses": dict(self.statuses),
        }


async def load(base: str, qs: list[str], tally: Tally, seconds: float,
               max_requests: int) -> Tally:
    """`tally.concurrency` clients asking in a loop, until `seconds` pass or `max_requests`
    are sent; adds to the tally."""
    concurrency = tally.concurrency
    host, _, port = base.removeprefix("http://").partition(":")
    bodies = [json.dumps({"message": q}).encode() for q in qs]
    latencies, statuses = tally.latencies, tally.statuses
    sent = 0
    deadline = time.monotonic() + seconds

    async def worker(wid: int) -> None:
        nonlocal sent
        conn = Connection(host, int(port))
        i = wid
        while time.monotonic() < deadline and sent < max_requests:
            sent += 1
            t = time.perf_counter()
            try:
                async with asyncio.timeout(30):
                    status = await conn.post_json("/api/chat", bodies[i % len(bodies)])
                statuses[outcome(status, conn.headers)] += 1
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, TimeoutError) as e:
                statuses[type(e).__name__] += 1
                conn.close()
            latencies.append((time.perf_counter() - t) * 1000)
            i += concurrency
        conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    tally.seconds += time.perf_counter() - started
    return tally


def outcome(status: int, headers: dict[str, str]) -> str:
    """A status as tallied: a 429 or 503 without Retry-After is an error of its own."""
    if status in (429, 503) and "retry-after" not in headers:
        return f"{status} without Retry-After"
    return str(status)


def allowed(outcome_name: str) -> bool:
    """The outcomes a loaded server may give: 200, or a refusal with Retry-After."""
    return outcome_name in ("200", "429", "503") or outcome_name.startswith("200 ")


async def demo_stream(base: str, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` clients each starting a demo run as soon as their last one ended."""
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        entries = (await client.get("/api/entries")).json()
        with_demo = [e["id"] for e in entries if e["has_demo"]]

        async def one(wid: int) -> None:
            i = wid
            while time.monotonic() < deadline:
                t = time.perf_counter()
                try:
                    r = await client.post(
                        f"/api/entries/{with_demo[i % len(with_demo)]}/demo/run",
                        json={"device": "cpu"})
                    name = outcome(r.status_code, {k.lower(): v for k, v in r.headers.items()})
                    if r.status_code == 200:
                        name = f"200 {r.json()['status']}"
                    elif name in ("429", "503"):
                        await asyncio.sleep(min(5.0, float(r.headers["retry-after"])))
                except httpx.HTTPError as e:
                    name = type(e).__name__
                outcomes[name] += 1
                latencies.append((time.perf_counter() - t) * 1000)
                i += clients

        await asyncio.gather(*(one(w) for w in range(clients)))
    ran = [k for k in outcomes if k.startswith("200 ")]
    return {"clients": clients, "runs": sum(outcomes.values()),
            "finished": sum(outcomes[k] for k in ran),
            "p50_ms": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
            "p99_ms": round(float(np.percentile(latencies, 99)), 1) if latencies else None,
            "outcomes": dict(outcomes),
            "errors": sum(n for k, n in outcomes.items() if not allowed(k))}


async def mixed(base: str, qs: list[str], seconds: float, demo_clients: int,
                ) -> dict[str, Any]:
    """Chat at concurrency 32 and a stream of demo runs, at the same time."""
    chat, demos = await asyncio.gather(
        load(base, qs, Tally(32), seconds, 10**9), demo_stream(base, demo_clients, seconds))
    row = chat.report()
    row["errors"] = sum(n for k, n in chat.statuses.items() if not allowed(k))
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        t = time.perf_counter()
        healthy = (await client.get("/healthz")).status_code == 200
        health_ms = (time.perf_counter() - t) * 1000
    return {"seconds": seconds, "chat": row, "demos": demos, "healthy_after": healthy,
            "healthz_ms_after": round(health_ms, 1)}


# Concurrency 1 runs in this many slices, each after a slice of bare encodes.
PAIRED_SLICES = 12
ENCODES_PER_SLICE = 40


def paired_level_one(base: str, qs: list[str], bare: BareEncoder, seconds: float,
                     max_requests: int) -> dict[str, Any]:
    """Concurrency 1 in slices that alternate with slices of bare encodes."""
    tally = Tally(1)
    for _ in range(PAIRED_SLICES):
        bare.sample(qs, ENCODES_PER_SLICE)
        uvloop.run(load(base, qs, tally, seconds / PAIRED_SLICES,
                         max_requests // PAIRED_SLICES))
    return tally.report()


async def demo_burst(base: str, n: int) -> dict[str, Any]:
    """n simultaneous demo runs: each must finish (200) or be refused with 503, never crash."""
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        entries = (await client.get("/api/entries")).json()
        with_demo = [e["id"] for e in entries if e["has_demo"]]
        started = time.perf_counter()

        async def one(i: int) -> str:
            try:
                r = await client.post(f"/api/entries/{with_demo[i % len(with_demo)]}/demo/run",
                                      json={"device": "cpu"})
                if r.status_code == 200:
                    return f"200 {r.json()['status']}"
                return str(r.status_code)
            except httpx.HTTPError as e:
                return type(e).__name__

        outcomes = Counter(await asyncio.gather(*(one(i) for i in range(n))))
        elapsed = time.perf_counter() - started
        healthy = (await client.get("/healthz")).status_code == 200
    return {"runs": n, "outcomes": dict(outcomes), "seconds": round(elapsed, 2),
            "healthy_after": healthy,
            "crashed": any(not k.startswith(("200", "503")) for k in outcomes)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="1,8,32", help="concurrency levels (default 1,8,32)")
    ap.add_argument("--seconds", type=float, default=15.0, help="time per level (capped so the "
                    f"whole load stays under {TOTAL_LOAD_BUDGET_S:.0f} s)")
    ap.add_argument("--max-requests", type=int, default=3000, help="requests per level at most")
    ap.add_argument("--encoder", default="auto", choices=["auto", "onnx", "torch"],
                    help="what runs the model, in the server and the bare encode (default auto)")
    ap.add_argument("--demos", type=int, default=0,
                    help="also fire this many simultaneous demo runs (needs the sandbox)")
    ap.add_argument("--mixed", type=float, default=0, metavar="SECONDS",
                    help="instead: chat at concurrency 32 while demo runs arrive, this long")
    ap.add_argument("--demo-clients", type=int, default=6,
                    help="with --mixed: clients that keep starting demo runs (default 6)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    if args.mixed:
        run_mixed(args)
        return
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    seconds = min(args.seconds, TOTAL_LOAD_BUDGET_S / max(1, len(levels)))

    qs = questions()
    bare = BareEncoder(args.encoder)
    runtime = bare.runtime
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    report: dict[str, Any] = {"encoder": runtime, "cpus": os.cpu_count(), "levels": []}
    with tempfile.TemporaryDirectory(prefix="askta-load-") as tmp:
        proc = start_server(Path(tmp), port, sandbox=args.demos > 0, encoder=runtime)
        try:
            uvloop.run(wait_ready(base, proc))
            uvloop.run(load(base, qs, Tally(4), 2.0, 200))  # warm-up, not reported
            for c in levels:
                if c == 1:
                    row = paired_level_one(base, qs, bare, seconds, args.max_requests)
                else:
                    row = uvloop.run(load(base, qs, Tally(c), seconds,
                                           args.max_requests)).report()
                report["levels"].append(row)
            if args.demos:
                report["demo_burst"] = uvloop.run(demo_burst(base, args.demos))
        finally:
            stop_server(proc)
    if not bare.samples:  # concurrency 1 was not asked for: encode on its own
        bare.sample(qs, PAIRED_SLICES * ENCODES_PER_SLICE)
    encode_p50 = bare.percentile(50)
    report["bare_encode_p50_ms"] = round(encode_p50, 2)
    report["bare_encode_p99_ms"] = round(bare.percentile(99), 2)
    for row in report["levels"]:
        row["p50_over_encode"] = round(row["p50_ms"] / encode_p50, 2)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"bare encode of one query ({runtime}): p50 {encode_p50:.2f} ms, "
          f"p99 {report['bare_encode_p99_ms']:.2f} ms ({report['cpus']} CPUs; "
          f"{len(bare.samples)} encodes)")
    print(f"{'concurrency':>11} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} "
          f"{'errors':>6}  p50 / encode")
    for row in report["levels"]:
        print(f"{row['concurrency']:>11} {row['requests']:>9} {row['p50_ms']:>8.2f} "
              f"{row['p99_ms']:>8.2f} {row['throughput_rps']:>8.1f} {row['errors']:>6}  "
              f"{row['p50_over_encode']:.2f}x")
    if "demo_burst" in report:
        b = report["demo_burst"]
        print(f"demo burst: {b['runs']} simultaneous runs in {b['seconds']} s -> {b['outcomes']}; "
              f"server healthy after: {b['healthy_after']}; crashed: {b['crashed']}")


def run_mixed(args: argparse.Namespace) -> None:
    """--mixed: the sandbox on, chat at concurrency 32 and demo runs for args.mixed s."""
    qs = questions()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="askta-load-") as tmp:
        proc = start_server(Path(tmp), port, sandbox=True, encoder=args.encoder)
        try:
            uvloop.run(wait_ready(base, proc))
            uvloop.run(load(base, qs, Tally(4), 2.0, 200))  # warm-up, not reported
            report = uvloop.run(mixed(base, qs, args.mixed, args.demo_clients))
        finally:
            stop_server(proc)
    report["cpus"] = os.cpu_count()
    if args.json:
        print(json.dumps(report, indent=2))
        return
    c, d = report["chat"], report["demos"]
    print(f"mixed load for {report['seconds']:.0f} s on {report['cpus']} CPUs")
    print(f"chat, concurrency 32: {c['requests']} requests, p50 {c['p50_ms']:.1f} ms, "
          f"p99 {c['p99_ms']:.1f} ms, {c['throughput_rps']} req/s; statuses {c['statuses']}; "
          f"errors {c['errors']}")
    print(f"demo runs, {d['clients']} clients: {d['runs']} requests, {d['finished']} ran, "
          f"p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms; outcomes {d['outcomes']}; "
          f"errors {d['errors']}")
    print(f"server healthy after: {report['healthy_after']} (/healthz answered in "
          f"{report['healthz_ms_after']:.0f} ms)")


if __name__ == "__main__":
    main()
