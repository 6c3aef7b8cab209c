"""The app factory. Nothing heavy happens at import: the model, index, database
and sandbox pool start in `lifespan`."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from server import logs
from server.config import Settings
from server.datadir import private_files
from server.services import Services
from server.web.error_handlers import install_error_handlers
from server.web.middleware import BodySizeLimit
from server.web.observability import Observability
from server.web.routes import include_routers

log = logging.getLogger("askta")


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """Build the askta app. `services` lets tests pass prebuilt parts (see server.services);
    without it they are started in the lifespan from `settings`."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        if not logs.configured():  # not by `askta serve` (uvicorn --factory ...), say
            logs.configure(settings.log_format, settings.log_level)
        # The session key, the database and the index are the server's alone: the data
        # dir 0700 and every file created while the server runs 0600.
        with private_files(settings.data_dir):
            svc = Services.start(settings)
            # The model, index and libraries leave ~500k objects that live as long as the
            # server: a full garbage collection that scans them stops every request for
            # about 0.3 s (benchmarks/gc_pause.py). Frozen, they are left out of every
            # later collection.
            gc.freeze()
            app.state.services = svc
            try:
                yield
            finally:
                # uvicorn has stopped accepting and waited for open requests; demo runs
                # still going get the grace to finish, then the pool stops and the
                # question log's last batch is written. A thread, so that the event loop
                # can still finish (or cancel) the requests those runs belong to.
                await asyncio.to_thread(svc.close, settings.shutdown_grace_s)

    app = FastAPI(
        title="askta",
        summary="Curated answers to course questions, with runnable demos.",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's pages load their scripts from a CDN: server/web/routes/docs.py serves /docs
        # from local files instead, and ReDoc is left out.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Observability)  # added last: the outermost, it sees every answer
    include_routers(app)
    return app
