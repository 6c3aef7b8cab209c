"""ASGI middleware: a request id, one access log line and the request metrics per request.

The request id is the client's X-Request-ID when it is a sane token (server/logs.py),
else a new one; it is set for the request's log lines and sent back as X-Request-ID.
The request is counted under its route's path template (`/api/entries/{entry_id}`),
not its URL, so the metrics' label values stay few whatever clients ask for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.logs import ACCESS_LOGGER, accept_request_id, request_id
from server.web.metrics import UNMATCHED

access_log = logging.getLogger(ACCESS_LOGGER)
REQUEST_ID_HEADER = "X-Request-ID"


class Observability:
    """Request id, access line and request metrics; outside every other middleware of
    the app but Starlette's own error middleware (which answers a crash with a 500)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        incoming = None
        for name, value in scope.get("headers") or ():
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        rid = accept_request_id(incoming)
        # Left set when the request ends: uvicorn runs each request in a task of its own,
        # and the 500 handler (outside this middleware) still reads it.
        request_id.set(rid)
        status = 500  # what the client gets if the app raises before it answers
        arrived = dict(scope)  # routing rewrites root_path (mounts): match against this

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            method, path = scope["method"], scope["path"]
            services = getattr(scope["app"].state, "services", None) if "app" in scope else None
            if services is not None:
                services.metrics.observe_request(method, route_template(scope, arrived), status,
                                                 seconds)
            access_log.info("%s %s %d %.1f ms", method, path, status, seconds * 1000,
                            extra={"method": method, "path": path, "status": status,
                                   "duration_ms": round(seconds * 1000, 1)})


def route_template(scope: Scope, arrived: Scope | None = None) -> str:
    """The path template of the route that served the request (`/api/entries/{entry_id}`;
    a mount's `/static/{path}`), or UNMATCHED. `scope` is the request's scope after the
    app ran, `arrived` a copy from before (what routing had not rewritten yet)."""
    route: Any = scope.get("route")  # FastAPI sets it for its API routes
    if route is None:  # a mount (static files), a 404, a body refused before routing
        app = scope.get("app")
        route = _match(getattr(getattr(app, "router", None), "routes", ()), arrived or scope)
    if route is None:
        return UNMATCHED
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template else UNMATCHED


def _match(routes: Any, scope: Scope) -> Any:
    """The route (looking into included routers) that takes this scope: the first full
    match, else the first partial one (a wrong method); None if none does."""
    partial = None
    for route in _leaves(routes):
        try:
            match, _ = route.matches(dict(scope))  # a copy: matching may write to it
        except Exception:  # a route that cannot judge this scope is not the one
            continue
        if match is Match.FULL:
            return route
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial


def _leaves(routes: Any) -> Iterator[Any]:
    """Routes and mounts, in order, with FastAPI's included routers opened up."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaves(inner.routes)
        else:
            yield route
