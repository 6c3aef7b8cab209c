"""Liveness (`/healthz`) and readiness (`/readyz`): what the server has loaded, and
whether it can answer questions now."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from indexer.search import Searcher, index_identity
from server.services import Services
from server.store import Store
from server.web.deps import ServicesDep
from server.web.errors import public_reason

router = APIRouter(tags=["health"])

# How long /readyz waits for `SELECT 1`: a probe must answer even when the database
# host does not (an unreachable server can keep a connect waiting for minutes).
DATABASE_TIMEOUT_S = 2.0
# The checks that decide 200 or 503. The sandbox is reported but not required: without
# it the server still answers questions, and only refuses demo runs (with the reason).
# Nor is the knowledge base's `kb` check: files it skipped are listed, the rest is served.
REQUIRED = ("model", "index", "database")

__all__ = ["public_reason", "router"]  # public_reason lives in server.web.errors


@router.get("/healthz")
def healthz(services: ServicesDep) -> dict:
    """Status, number of published entries and the index manifest."""
    index = services.searcher.index
    return {
        "status": "ok",
        "entries": len(services.kb.published()),
        "index": {
            "model": index.model,
            "dimension": index.dimension,
            "vectors": len(index),
            "kb_hash": index.kb_hash,
        },
        "sandbox": {
            "available": services.runs.available,
            "reason": public_reason(services.sandbox_error),
            "cuda": services.runs.cuda_available,
        },
        "runs": _runs(services),
        "change_feed": _feed_state(services),
    }


def _runs(services: Services) -> dict[str, Any]:
    """The executor, its connected workers per device and its queues."""
    status = services.runs.status()
    return {"executor": status.executor, "workers": status.workers,
            "queue_depth": status.queue_depth, "running": status.running,
            "reason": public_reason(status.reason)}


@router.get(
    "/readyz",
    responses={
        200: {"description": "Ready: the model, the index and the database all work."},
        503: {"description": "Not ready: the same body, with the failing checks' reasons."},
    },
)
def readyz(services: ServicesDep) -> JSONResponse:
    """Whether this server can answer questions now, check by check.

    `{"status": "ready" | "not ready", "checks": {"model", "index", "database",
    "sandbox", "kb", "change_feed"}}`, each check `{"ok", "required", ...}` with a
    `reason` when not ok.
    200 when every required check is ok (model, index, database); 503 otherwise. The
    sandbox is reported, not required: without it questions are still answered and
    only demo runs are refused. `kb` lists the knowledge-base files the server skipped
    at start (broken ones: `askta check` says why) and stays ok: the rest is served.
    `change_feed` says whether this process hears the other web processes' kb/ changes.
    Unlike the API's errors, a 503 here keeps this body, so a probe's log says which
    check failed.
    """
    checks: dict[str, dict[str, Any]] = {
        "model": _model(services.searcher),
        "index": _index(services),
        "database": _database(services.store),
        "sandbox": _sandbox(services),
        "kb": _kb(services),
        "change_feed": _change_feed(services),
    }
    for name, check in checks.items():
        check["required"] = name in REQUIRED
    ready = all(checks[name]["ok"] for name in REQUIRED)
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


def _model(searcher: Searcher) -> dict[str, Any]:
    """The embedder is loaded and is the one the index was built with."""
    embedder, index = searcher.embedder, searcher.index
    name, dimension = embedder.name, embedder.dimension
    check: dict[str, Any] = {"ok": False, "name": name, "dimension": dimension}
    if not name or not dimension:
        check["reason"] = "no embedding model is loaded"
    elif dimension != index.dimension or index_identity(embedder) != index.model:
        check["reason"] = (f"the model ({name}, {dimension}d) is not the one the index was "
                           f"built with ({index.model}, {index.dimension}d)")
    else:
        check["ok"] = True
    return check


def _index(services: Services) -> dict[str, Any]:
    """The index holds vectors to search."""
    vectors = len(services.searcher.index)
    check: dict[str, Any] = {"ok": vectors > 0, "vectors": vectors,
                             "entries": len(services.kb.published())}
    if not vectors:
        check["reason"] = "the index is empty: no published or unanswered entry in the KB"
    return check


def _database(store: Store) -> dict[str, Any]:
    """`SELECT 1` through the store's engine, waiting at most DATABASE_TIMEOUT_S."""
    outcome: list[BaseException | None] = []
    done = threading.Event()

    def ping() -> None:
        try:
            with store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            outcome.append(None)
        except Exception as e:  # any failure is the answer, not an error of this route
            outcome.append(e)
        finally:
            done.set()

    # A daemon thread, so a connect that hangs is left behind instead of holding the
    # request (it ends with the driver's own timeout).
    threading.Thread(target=ping, name="askta-readyz-db", daemon=True).start()
    backend = store.engine.dialect.name
    if not done.wait(DATABASE_TIMEOUT_S):
        return {"ok": False, "backend": backend,
                "reason": f"the database did not answer within {DATABASE_TIMEOUT_S:g} s"}
    error = outcome[0]
    if error is None:
        return {"ok": True, "backend": backend}
    # SQLAlchemy wraps the driver's error; its first line is the useful part.
    detail = str(getattr(error, "orig", None) or error).strip().splitlines()
    message = f"{type(error).__name__}: {detail[0] if detail else ''}".rstrip(": ")
    return {"ok": False, "backend": backend, "reason": public_reason(message)}


def _kb(services: Services) -> dict[str, Any]:
    """The entries loaded, and the files skipped because they are broken (named only:
    what is wrong with them may quote a draft, and `askta check` tells staff)."""
    kb = services.kb
    skipped = [public_reason(path) for path in kb.skipped_files()]
    check: dict[str, Any] = {"ok": True, "entries": len(kb), "skipped": skipped}
    if skipped:
        check["reason"] = (f"{len(skipped)} file(s) of the knowledge base are broken and were "
                           "skipped: run `askta check` to see why")
    return check


def _change_feed(services: Services) -> dict[str, Any]:
    """Whether this process hears the other web processes' kb/ changes (reported, not
    required: while it is down this process answers from what it knows, and catches up
    when it reconnects). Without a feed (one process) there is nothing to hear."""
    feed = services.change_feed
    state = _feed_state(services)
    ok = feed.backend == "off" or feed.connected
    check: dict[str, Any] = {"ok": ok, **state}
    if not ok:
        check["reason"] = public_reason(
            f"not connected to {feed.backend}: changes made through other web processes "
            f"reach this one when it reconnects ({feed.error or 'connecting'})")
    return check


def _feed_state(services: Services) -> dict[str, Any]:
    """The change feed's state, its error without paths."""
    state = services.change_feed.state()
    if "error" in state:
        state["error"] = public_reason(state["error"])
    return state


def _sandbox(services: Services) -> dict[str, Any]:
    """Whether demos can run; if not, why (paths removed)."""
    if services.runs.available:
        return {"ok": True}
    return {"ok": False,
            "reason": public_reason(services.sandbox_error) or "the sandbox is not running"}
