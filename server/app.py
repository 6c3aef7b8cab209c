"""The app factory. Nothing heavy happens at import: the model, index, database
and sandbox pool start in `lifespan`."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.config import Settings
from server.errors import error_body, install_error_handlers

log = logging.getLogger("askta")


class BodySizeLimit:
    """Refuse request bodies over the limit with 413, before they are read into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._refuse(send)
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(413, f"The request body is over {self.max_bytes} bytes.")
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            error_body("payload_too_large", f"The request body is over {self.max_bytes} bytes.")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(StarletteHTTPException):
    """Raised while the body streams in; an HTTPException, so FastAPI passes it through
    to the one error handler instead of calling it a parse error."""


def create_app(settings: Settings | None = None, *, services: object | None = None) -> FastAPI:
    """Build the askta app. `services` lets tests pass prebuilt parts (see server.services)."""
    from server.services import Services

    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = services if isinstance(services, Services) else Services.start(settings)
        if services is None:
            # The model, index and libraries leave ~500k objects that live as long as the
            # server: a full garbage collection that scans them stops every request for
            # about 0.3 s (benchmarks/gc_pause.py). Frozen, they are left out of every
            # later collection.
            gc.freeze()
        app.state.services = svc
        try:
            yield
        finally:
            if services is None:
                svc.close()

    app = FastAPI(
        title="askta",
        summary="Curated answers to course questions, with runnable demos.",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's pages load their scripts from a CDN: server/routes/docs.py serves /docs
        # from local files instead, and ReDoc is left out.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)

    from server.routes import include_routers

    include_routers(app)
    return app
