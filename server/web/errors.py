"""The errors routes raise, and the JSON shape every API error has.

Every API error has the shape {"error": {"code": str, "message": str}};
server/web/error_handlers.py renders the same errors as HTML pages for browsers.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from indexer.kb import KnowledgeBaseError
from server.sandbox.errors import DeviceUnavailable, SandboxBusy, SandboxError


class AppError(Exception):
    """An error with an HTTP status, a stable code and a message for people."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(AppError):
    status, code = 400, "bad_request"


class Unauthorized(AppError):
    status, code = 401, "unauthorized"


class LoginRequired(Unauthorized):
    """A staff page was opened without a login: a browser gets the login form."""


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"


class PayloadTooLarge(AppError):
    status, code = 413, "payload_too_large"


class Unprocessable(AppError):
    status, code = 422, "invalid"


class RateLimited(AppError):
    status, code = 429, "rate_limited"

    def __init__(self, retry_after: float, message: str | None = None):
        seconds = max(1, int(retry_after + 0.999))
        text = (f"{message} Try again in {seconds} s." if message
                else f"Too many requests: try again in {seconds} s.")
        super().__init__(text, headers={"Retry-After": str(seconds)})


class DeviceUnavailableError(Unprocessable):
    code = "device_unavailable"


class Conflict(AppError):
    status, code = 409, "conflict"


class ServiceUnavailable(AppError):
    status, code = 503, "unavailable"


class PreconditionRequired(AppError):
    status, code = 428, "precondition_required"


STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    428: "precondition_required",
    429: "rate_limited",
    503: "unavailable",
    507: "insufficient_storage",
}


class ErrorDetail(BaseModel):
    """One error: a code for scripts, a message for people."""

    code: str = Field(description="A stable code for scripts, e.g. `not_found`, "
                                  "`malformed_json`, `invalid_entry`, `device_unavailable`.")
    message: str = Field(description="What went wrong, for people.")
    fields: dict[str, str] | None = Field(
        None, description="`invalid_entry` only: the first problem with each field.")


class ErrorBody(BaseModel):
    """The body of every API error."""

    error: ErrorDetail


# The error responses routes declare in the OpenAPI schema (`responses=error_responses(...)`),
# all with the one error body; the fuzz test (tests/web/test_fuzz.py) checks that every
# error a route answers is declared.
ERROR_RESPONSES: dict[int, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "The body is not valid JSON, or the action does not apply.",
        401: "No valid login or bearer token.",
        403: "The user's role may not do this, or the CSRF token is missing.",
        404: "Not found: no such published entry, demo or review item.",
        409: "In conflict with the current state, e.g. a review item already closed.",
        413: "The body or the message is over the limit.",
        422: "The request is invalid (for an entry, `invalid_entry` with `fields`).",
        428: "A change to an existing entry needs `If-Match` with its ETag.",
        429: "Over the client's rate limit: retry after `Retry-After` seconds.",
        503: "Demo runs are not available, or every runner is busy (with `Retry-After`).",
        507: "The server's disk is full: nothing was saved, the old entry is unchanged.",
    }.items()
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                               "schema": {"type": "integer", "minimum": 1}}}
ERROR_RESPONSES[429]["headers"] = RETRY_AFTER
ERROR_RESPONSES[503]["headers"] = RETRY_AFTER
# Any route that reads a body: malformed JSON, over the size limit, failing validation.
BODY_ERRORS = (400, 413, 422)
# Routes for staff: not logged in, or not allowed.
STAFF_ERRORS = (401, 403)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` for these error statuses (see ERROR_RESPONSES)."""
    return {status: ERROR_RESPONSES[status] for status in sorted(set(statuses))}


# An absolute path: a slash that starts a word ("/opt/x", "'/root/y'"), not one inside
# one ("seccomp/AppArmor", "30/minute").
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/[^\s'\"`(),;:]*[^\s'\"`(),;:.]")


def public_reason(reason: str | None) -> str | None:
    """A reason fit for an unauthenticated client: absolute paths replaced by `<path>`
    (the full text, paths included, is in the server's log). Every message about the
    sandbox or the server's files that a student can see goes through this."""
    if reason is None:
        return None
    return _ABSOLUTE_PATH.sub("<path>", reason)


def error_body(code: str, message: str,
               fields: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """{"error": {"code", "message"}}, with `fields` for an `invalid_entry`."""
    detail: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        detail["fields"] = fields
    return {"error": detail}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None,
    fields: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, fields), status_code=status, headers=headers)


def problems_by_field(e: KnowledgeBaseError) -> dict[str, str]:
    """The first problem with each field of an entry ("entry" for the whole file): what
    the API's `invalid_entry` error and the admin's entry form show next to each field."""
    fields: dict[str, str] = {}
    for p in e.problems:
        fields.setdefault((p.field or "entry").split("[")[0], p.message)
    return fields


def validation_message(exc: RequestValidationError) -> tuple[int, str, str]:
    """Status, code and message of a request that failed validation."""
    errors = exc.errors()
    for err in errors:
        if err.get("type") == "json_invalid":
            return 400, "malformed_json", "The request body is not valid JSON."
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return 422, "invalid", "; ".join(parts) or "The request is invalid."


BUSY_RETRY_AFTER_S = 5


def sandbox_refusal(e: SandboxError) -> AppError:
    """The API error for a sandbox refusal, the same from every route.

    Busy: 503 with Retry-After; a device this machine lacks: 422 device_unavailable;
    the sandbox cannot run at all: 503.
    """
    if isinstance(e, SandboxBusy):
        retry = max(1, round(e.retry_after or BUSY_RETRY_AFTER_S))
        return ServiceUnavailable(f"Every demo runner is busy and the queue is full: try again "
                                  f"in {retry} s.", headers={"Retry-After": str(retry)})
    if isinstance(e, DeviceUnavailable):
        return DeviceUnavailableError(public_reason(str(e)) or "That device is not available here.")
    return ServiceUnavailable(f"Demo runs are not available: {public_reason(str(e))}")
