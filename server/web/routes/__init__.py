"""HTTP routes: thin translations between requests and the library underneath.

One module per concern, each with a `router`; no route module imports another
(an import-linter contract in `make test` checks it). What several share lives
in server/web: presenters, auth, staff_pages, errors.
"""

from __future__ import annotations

from fastapi import FastAPI

from server.web.routes import (
    admin,
    chat,
    demos,
    docs,
    entries,
    feedback,
    health,
    history,
    login,
    metrics,
    pages,
    review,
    runs,
    stats,
)

ROUTE_MODULES = (health, chat, entries, demos, runs, feedback, pages, review, login, admin, history,
                 stats, docs, metrics)


def include_routers(app: FastAPI) -> None:
    """Mount every route module's router."""
    for module in ROUTE_MODULES:
        app.include_router(module.router)
