"""How long a full garbage collection stops a started server, with and without gc.freeze().

Starts the same services as `askta serve` for the bundled KB (model, index,
database; no sandbox) in this process, then times gc.collect() a few times,
then again after gc.freeze(), which the app calls once it has started
(server/web/app.py). A full collection holds the GIL: every request waits for it.

Run: .venv/bin/python benchmarks/gc_pause.py [--encoder auto|onnx|torch]
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from server.config import Settings  # noqa: E402
from server.services import Services  # noqa: E402

ROUNDS = 3


def collect_ms() -> float:
    started = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--encoder", default="auto", choices=["auto", "onnx", "torch"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="askta-gc-") as tmp:
        shutil.copytree(REPO / "kb", Path(tmp) / "kb")
        shutil.copytree(REPO / "demos", Path(tmp) / "demos")
        services = Services.start(Settings(kb_dir=Path(tmp) / "kb", data_dir=Path(tmp) / "data",
                                           encoder=args.encoder, sandbox_enabled=False))
        try:
            tracked = len(gc.get_objects())
            before = [collect_ms() for _ in range(ROUNDS)]
            gc.freeze()
            after = [collect_ms() for _ in range(ROUNDS)]
            print(f"objects the collector tracks after start-up: {tracked:,}")
            print(f"full collection: {', '.join(f'{t:.1f}' for t in before)} ms; "
                  f"after gc.freeze(): {', '.join(f'{t:.2f}' for t in after)} ms "
                  f"({gc.get_freeze_count():,} objects frozen)")
        finally:
            services.close()


if __name__ == "__main__":
    main()
