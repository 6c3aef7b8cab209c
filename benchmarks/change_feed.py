"""How long a KB change made through one web process takes to be answered by another.

Two `askta serve` processes share a copy of kb/, one data dir and one database (SQLite,
or --database-url), with the change feed over Redis (a private `redis-server` unless
--redis-url) or, with --feed postgresql, over PostgreSQL LISTEN/NOTIFY. An instructor
adds a new phrasing to an entry through A (PUT with If-Match); the clock runs from A's
200 until B serves the new version (read every 2 ms) and answers that phrasing.

    .venv/bin/python benchmarks/change_feed.py [--changes 50]
    .venv/bin/python benchmarks/change_feed.py --feed postgresql \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from server.accounts import Accounts  # noqa: E402
from server.store import Store  # noqa: E402

ENTRY = "why-nonlinearities"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`askta serve` on a free port, its output in serve-<port>.log beside the data dir."""
    port = free_port()
    log = open(Path(env["ASKTA_DATA_DIR"]).parent / f"serve-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "server.cli.main", "serve", "--port",
                             str(port)], cwd=REPO, env=env, stdout=log, stderr=log)
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(base: str, root: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    log = root / f"serve-{base.rsplit(':', 1)[1]}.log"
    raise SystemExit(f"{base} did not become ready:\n" + log.read_text()[-3000:])


def _answers(client: httpx.Client, phrase: str) -> bool:
    reply = client.post("/api/chat", json={"message": phrase}).json()
    return bool(reply["answered"] and reply["entry"]["id"] == ENTRY)


def private_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                             "--dir", str(folder), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--feed", choices=["redis", "postgresql"], default="redis")
    ap.add_argument("--redis-url", default="")
    ap.add_argument("--database-url", default="")
    args = ap.parse_args()
    if args.feed == "postgresql" and not args.database_url.startswith("postgresql"):
        raise SystemExit("--feed postgresql needs --database-url postgresql+psycopg://...")

    root = Path(tempfile.mkdtemp(prefix="askta-feed-bench."))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        shutil.copytree(REPO / "kb", root / "kb")
        shutil.copytree(REPO / "demos", root / "demos")
        database_url = args.database_url or f"sqlite:///{root / 'data' / 'askta.db'}"
        env = {**os.environ, "ASKTA_KB_DIR": str(root / "kb"),
               "ASKTA_DATA_DIR": str(root / "data"), "ASKTA_MODEL": "",
               "ASKTA_DATABASE_URL": database_url, "ASKTA_CHAT_RATE_LIMIT": "off",
               "ASKTA_SANDBOX_ENABLED": "false", "ASKTA_LOG_LEVEL": "WARNING"}
        env.pop("ASKTA_REDIS_URL", None)
        if args.feed == "redis":
            redis_url = args.redis_url
            if not redis_url:
                proc, redis_url = private_redis(root)
                procs.append(proc)
            env["ASKTA_REDIS_URL"] = redis_url
        (a, a_url), (b, b_url) = serve(env), serve(env)
        procs += [a, b]
        wait_ready(a_url, root)
        wait_ready(b_url, root)
        store = Store(database_url)
        accounts = Accounts(store)
        accounts.add("bench", "instructor", None)
        headers = {"Authorization": f"Bearer {accounts.issue_token('bench')}"}
        store.close()

        put_ms, seen_ms = [], []
        with httpx.Client(base_url=a_url, timeout=30) as ca, \
                httpx.Client(base_url=b_url, timeout=30) as cb:
            for i in range(args.changes):
                phrase = f"benchmark phrasing {i} of the zanzibar ostrich carburetor"
                r = ca.get(f"/api/admin/entries/{ENTRY}", headers=headers)
                body = r.json()
                body["alternate_questions"] = [*body["alternate_questions"], phrase]
                began = time.perf_counter()
                r = ca.put(f"/api/entries/{ENTRY}", json=body,
                           headers={**headers, "If-Match": r.headers["ETag"]})
                assert r.status_code == 200, r.text
                saved, version = time.perf_counter(), r.headers["ETag"]
                # Polled with reads, which write nothing (a chat logs its question), then
                # asked once the entry is there: B indexes it in the same step.
                while cb.get(f"/api/admin/entries/{ENTRY}",
                             headers=headers).headers["ETag"] != version:
                    assert time.perf_counter() - saved < 10, "B never saw the change"
                    time.sleep(0.002)
                while not _answers(cb, phrase):
                    assert time.perf_counter() - saved < 10, "B never answered"
                seen = time.perf_counter()
                put_ms.append((saved - began) * 1000)
                seen_ms.append((seen - saved) * 1000)
            feed = cb.get("/healthz").json()["change_feed"]

        def pct(values: list[float], q: float) -> float:
            return sorted(values)[min(len(values) - 1, int(q * len(values)))]

        backend = "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"
        print(f"{args.changes} changes, feed {feed['backend']}, database {backend}, "
              "model: bundled MiniLM")
        print(f"PUT on A (save, commit queued, re-embed, publish): "
              f"p50 {statistics.median(put_ms):.1f} ms, p99 {pct(put_ms, 0.99):.1f} ms")
        print(f"from A's 200 until B answers the new phrasing: p50 "
              f"{statistics.median(seen_ms):.1f} ms, p99 {pct(seen_ms, 0.99):.1f} ms, "
              f"max {max(seen_ms):.1f} ms")
        print(f"B received {feed['received']} changes; the last arrived "
              f"{feed['last_lag_ms']} ms after A published it")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
