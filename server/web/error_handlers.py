"""The one error path: every error becomes the JSON error shape for the API and for
scripts, or the site's HTML error page for a browser.

A request gets HTML when it is outside /api/ and either matched a page route (one
left out of the API schema) or asks for text/html, as a browser opening an unknown
URL does. A page that needs a login shows the login form (401); one the user's role
may not open says so (403).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from indexer.kb import EntryNotFound, KnowledgeBaseError, StorageFull
from server.logs import request_id
from server.web.errors import (
    STATUS_CODES,
    AppError,
    LoginRequired,
    error_response,
    problems_by_field,
    validation_message,
)
from server.web.staff_pages import login_page, staff_page
from server.web.templating import PAGE_HEADERS, templates

log = logging.getLogger("askta")

TITLES = {400: "Bad request", 401: "Log in", 403: "Not allowed", 404: "Not found",
          405: "Not allowed", 413: "Too large", 422: "Invalid request",
          429: "Too many requests", 500: "Something went wrong", 503: "Not available",
          507: "Disk full"}


def wants_html(request: Request) -> bool:
    """Whether this request should see an HTML page rather than the JSON error shape."""
    if request.url.path.startswith("/api/"):
        return False
    route = request.scope.get("route")
    if route is not None and getattr(route, "include_in_schema", True) is False:
        return True
    return "text/html" in request.headers.get("accept", "")


def render_error(request: Request, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None,
                 exc: Exception | None = None,
                 fields: dict[str, str] | None = None) -> Response:
    """The error as an HTML page or as {"error": {"code", "message"}} (and `fields`)."""
    if not wants_html(request):
        return error_response(status, code, message, headers, fields)
    if isinstance(exc, LoginRequired):
        return login_page(request, next_url=request.url.path, status=401)
    if status == 403:
        user = getattr(request.state, "askta_user", None)  # set once the request authenticated
        response: Response = staff_page(request, "error.html", user, {
            "title": TITLES[403], "message": message, "status": 403, "login_link": True}, 403)
    else:
        response = templates.TemplateResponse(request, "error.html", {
            "title": TITLES.get(status, "Error"), "message": message, "status": status},
            status_code=status, headers=PAGE_HEADERS)
    response.headers.update(headers or {})
    return response


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors and stray exceptions to `render_error`."""

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        return render_error(request, exc.status, exc.code, exc.message, exc.headers, exc)

    @app.exception_handler(EntryNotFound)
    async def _not_found(request: Request, exc: EntryNotFound) -> Response:
        return render_error(request, 404, "not_found", f"No entry with id {exc.entry_id!r}.")

    @app.exception_handler(KnowledgeBaseError)
    async def _kb_error(request: Request, exc: KnowledgeBaseError) -> Response:
        return render_error(request, 422, "invalid_entry", str(exc),
                            fields=problems_by_field(exc))

    @app.exception_handler(StorageFull)
    async def _storage_full(request: Request, exc: StorageFull) -> Response:
        log.error("kb write failed, disk full: %s", exc.path)
        return render_error(request, 507, "insufficient_storage", exc.strerror or str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        status, code, message = validation_message(exc)
        return render_error(request, status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and message == "Not Found":
            message = "There is no page at this address."
        return render_error(request, exc.status_code, code, message,
                            getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # Answered outside the Observability middleware: the request id is added here.
        rid = request_id.get()
        return render_error(request, 500, "internal",
                            "Something went wrong on our side; it has been logged.",
                            {"X-Request-ID": rid} if rid else None)
