"""How long a student waits for a demo: fresh `python demo.py`, a fresh sandbox, a warm
pool worker; 4 concurrent requests on a 2-slot runner; and what an idle pool costs.

    .venv/bin/python benchmarks/demo_latency.py [--reps 3]

Timings are medians over --reps runs: "first" is the time to the first line of output,
"done" the time to the end of the run (the exit, or the `done` event).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.config import Settings  # noqa: E402
from server.sandbox import RunResult, SandboxRunner  # noqa: E402
from server.sandbox.worker import descendants  # noqa: E402

DEMO = '''\
"""A small SGD fit of y = 3x + 1."""
import os
import torch

DEVICE = os.environ.get("ASKTA_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)
x = torch.linspace(-1, 1, 256, device=DEVICE).unsqueeze(1)
y = 3 * x + 1 + 0.1 * torch.randn_like(x)
model = torch.nn.Linear(1, 1).to(DEVICE)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
print(f"training on {DEVICE}", flush=True)
for step in range(200):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print(f"step {step:3d}  loss {loss.item():.4f}")
print(f"w = {model.weight.item():.2f}, b = {model.bias.item():.2f}")
'''


def fresh_python(python: str, path: Path) -> tuple[float, float]:
    """(first output, done) for `python demo.py` in a new process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([python, str(path)], stdout=subprocess.PIPE, text=True,
                            env={"PATH": os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    proc.stdout.readline()
    first = time.perf_counter() - t0
    proc.stdout.read()
    proc.wait()
    return first, time.perf_counter() - t0


def sandboxed(runner: SandboxRunner) -> tuple[float, float, RunResult]:
    """(first output, done, result) for one run through the runner."""
    t0 = time.perf_counter()
    first = None
    done = None
    for event in runner.stream(DEMO, "cpu"):
        if first is None and event.kind == "stdout":
            first = time.perf_counter() - t0
        if event.kind == "done":
            done = event.data
    assert done is not None and first is not None
    return first, time.perf_counter() - t0, RunResult(**done)


def rss_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB of one process."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def median(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    base = Settings().sandbox_config()
    cfg = replace(base, max_concurrent=2, queue_size=8)
    rows: list[tuple[str, float, float]] = []

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo.py"
        path.write_text(DEMO)
        os.chmod(tmp, 0o755)
        f, d = median([fresh_python(str(cfg.python), path) for _ in range(args.reps)])
        rows.append(("fresh `python demo.py`", f, d))

    with SandboxRunner(replace(cfg, pool_size=0)) as cold:
        cold.check()
        f, d = median([sandboxed(cold)[:2] for _ in range(args.reps)])
        rows.append(("fresh sandbox (empty pool)", f, d))

    with SandboxRunner(replace(cfg, pool_size=2)) as warm:
        warm.start()
        assert warm.pool is not None
        timings = []
        for _ in range(args.reps):
            warm.pool.wait_until_full(300)
            first, done, result = sandboxed(warm)
            assert result.status == "ok", result.stderr
            timings.append((first, done))
        f, d = median(timings)
        rows.append(("warm pool worker", f, d))

        # four requests at once on two slots: two take warm workers, two queue
        warm.pool.wait_until_full(300)
        results: list[tuple[float, float, RunResult]] = []
        t0 = time.perf_counter()
        threads = [threading.Thread(target=lambda: results.append(sandboxed(warm)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        statuses = [r.status for _, _, r in results]

        warm.pool.wait_until_full(300)
        time.sleep(1)
        per_worker = []
        for w in warm.pool.workers():
            procs = descendants(w.proc.pid)
            sizes = [rss_kib(p) for p in procs]
            per_worker.append((sum(s[0] for s in sizes), sum(s[1] for s in sizes)))

    fresh_done = rows[0][2]
    print(f"demo: 200 SGD steps of a 1-feature linear model, cpu; median of {args.reps}")
    print(f"{'':28s} {'first output':>13s} {'done':>9s} {'vs fresh python':>16s}")
    for name, first, done in rows:
        print(f"{name:28s} {first * 1000:10.0f} ms {done * 1000:6.0f} ms "
              f"{fresh_done / done:14.1f}x")
    print()
    print(f"4 concurrent requests, 2 slots, pool of 2: {statuses.count('ok')}/4 ok "
          f"({', '.join(statuses)}), all done after {wall:.2f} s; per request done at "
          + ", ".join(f"{d:.2f} s" for _, d, _ in sorted(results, key=lambda r: r[1])))
    print()
    n = len(per_worker)
    rss = sum(r for r, _ in per_worker) / 1024
    pss = sum(p for _, p in per_worker) / 1024
    print(f"idle pool: {n} workers (bwrap + init + harness each), RSS {rss:.0f} MiB in all "
          f"({rss / max(n, 1):.0f} MiB each), PSS {pss:.0f} MiB in all")


if __name__ == "__main__":
    main()
