"""HTTP routes: thin translations between requests and the library underneath."""

from __future__ import annotations

import importlib

from fastapi import FastAPI

# One module per concern; each defines `router`.
ROUTE_MODULES = [
    "server.routes.health",
    "server.routes.chat",
    "server.routes.entries",
    "server.routes.demos",
    "server.routes.feedback",
    "server.routes.pages",
    "server.routes.review",
    "server.routes.admin",
    "server.routes.docs",
]


def include_routers(app: FastAPI) -> None:
    """Mount every route module's router."""
    for name in ROUTE_MODULES:
        app.include_router(importlib.import_module(name).router)
