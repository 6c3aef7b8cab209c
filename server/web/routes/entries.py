"""Entries: the list of published entries and one entry as JSON; and, for instructors'
scripts, create / replace / delete with ETag and If-Match.

Writes go through the admin editor's path (EntryEditor: checked like `askta check`,
saved atomically, live in search at once). Optimistic concurrency: GET
/api/admin/entries/{id} (any status) or GET /api/entries/{id} (published) gives the
entry's ETag; a PUT or DELETE sends it back in If-Match and gets 409 with the current
version when someone else changed the entry meanwhile. Replacing or deleting without
If-Match is refused (428); `If-Match: *` means "whatever version is there".
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from indexer.kb import FIELDS, KnowledgeBaseError, Problem
from server.review.authoring import ANY_VERSION, VersionConflict
from server.web.auth import InstructorUser
from server.web.deps import KBDep, ServicesDep
from server.web.errors import (
    ERROR_RESPONSES,
    BadRequest,
    ErrorBody,
    PreconditionRequired,
    error_body,
    error_responses,
)
from server.web.presenters import (
    EntrySource,
    entry_source,
    entry_to_json,
    etag,
    published_entry,
)

router = APIRouter(tags=["entries"])

# Keys a PUT body may have besides the entry's fields: the id (it must equal the path's)
# and the etag a GET returned (ignored: send it as If-Match), so that a script can PUT
# back what it read.
READ_ONLY_KEYS = ("id", "etag")


class EntryFields(BaseModel):
    """The body of PUT /api/entries/{id}: the whole entry (missing fields take their
    defaults, as in a YAML file). Checked like `askta check`."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(description="The question as a student asks it.")
    alternate_questions: list[str] = Field(default_factory=list,
                                           description="Other phrasings.")
    answer: str = Field("", description="Markdown; code blocks and $math$ allowed.")
    tags: list[str] = Field(default_factory=list, description="Like chapter-4.")
    demo: str | None = Field(None, description="A demo file, like demos/x.py.")
    status: str = Field("published", description="published, draft or unanswered.",
                        json_schema_extra={"enum": ["published", "draft", "unanswered"]})
    id: str | None = Field(None, description="Optional; if sent, equal to the path's id.")
    etag: str | None = Field(None, description="Ignored (read-only): send it as If-Match.")


class VersionConflictResponse(ErrorBody):
    """409: the entry is not at the version sent in If-Match (or exists, for
    If-None-Match: *). `current` is the entry now (null: it was deleted), with its etag."""

    current: EntrySource | None


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed JSON or header."},
    401: {"model": ErrorBody, "description": "No login session or bearer token."},
    403: {"model": ErrorBody,
          "description": "Not an instructor, or a session request without its CSRF token."},
    404: {"model": ErrorBody, "description": "No such entry."},
    409: {"model": VersionConflictResponse,
          "description": "Someone else changed the entry: the current version is in the "
                         "body (`current`) and in the ETag header."},
    422: {"model": ErrorBody,
          "description": "Invalid entry: `error.fields` has the problem of each field."},
    428: {"model": ErrorBody,
          "description": "The entry exists: send If-Match with its ETag (or *)."},
    507: ERROR_RESPONSES[507],
}
IF_MATCH = Header(description="The ETag of the version this change is based on, or * for "
                              "any existing version.")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: ERRORS[code] for code in codes}


@router.get("/api/entries")
def list_entries(kb: KBDep) -> list[dict[str, Any]]:
    """Every published entry: id, question, tags, status and whether it has a demo."""
    return [
        {"id": e.id, "question": e.question, "tags": list(e.tags), "status": e.status.value,
         "has_demo": bool(e.demo)}
        for e in kb.published()
    ]


@router.get("/api/entries/{entry_id}", responses={**_errors(404), **error_responses(422)})
def get_entry(entry_id: str, services: ServicesDep, response: Response) -> dict[str, Any]:
    """One published entry, with its answer rendered and its demo's last cached run.

    The ETag header is the entry's version, for If-Match on PUT / DELETE."""
    entry = published_entry(services, entry_id)
    response.headers["ETag"] = etag(entry)
    return entry_to_json(services, entry)


@router.put(
    "/api/entries/{entry_id}",
    response_model=None,
    responses={200: {"model": EntrySource, "description": "Replaced."},
               201: {"model": EntrySource, "description": "Created."},
               **_errors(400, 401, 403, 409, 422, 428, 507)},
    openapi_extra={"requestBody": {"content": {"application/json": {
        "schema": EntryFields.model_json_schema()}}}},
)
def put_entry(
    entry_id: str,
    body: Annotated[dict[str, Any], Body()],
    services: ServicesDep,
    user: InstructorUser,
    if_match: Annotated[str | None, IF_MATCH] = None,
    if_none_match: Annotated[str | None, Header(
        description="* to create the entry only if it does not exist yet.")] = None,
) -> Response:
    """Create or replace an entry (instructors); it is live in search at once.

    Replacing needs `If-Match` with the ETag of the version the change is based on
    (428 without it; 409 with the current version when it is stale). Creating needs
    nothing, or `If-None-Match: *` (409 if the entry exists). 201 on create, 200 on
    replace, each with the saved entry and its new ETag."""
    expected = _entity_tag("If-Match", if_match) if if_match is not None else None
    if if_none_match is not None and if_none_match.strip() != "*":
        raise BadRequest("If-None-Match: only * is supported (create only if it does not "
                         "exist yet).")
    if expected is not None and if_none_match is not None:
        raise BadRequest("Send If-Match (to replace) or If-None-Match: * (to create), "
                         "not both.")
    try:
        fields = _entry_fields(entry_id, body)
        if expected is None:
            saved = services.editor.save(fields, by=user.name, if_none_match=True)
        else:
            saved = services.editor.save(fields, by=user.name, entry_id=entry_id,
                                         if_match=expected)
    except VersionConflict as e:
        if expected is None and if_none_match is None:
            raise PreconditionRequired(
                f"{entry_id!r} exists: to replace it, send If-Match with its ETag (from GET "
                f"/api/admin/entries/{entry_id}), or If-Match: * to replace whatever version "
                "is there.") from None
        return _conflict(e, creating=expected is None)
    created = expected is None
    headers = {"ETag": etag(saved)}
    if created:
        headers["Location"] = f"/api/admin/entries/{saved.id}"
    return JSONResponse(entry_source(saved), status_code=201 if created else 200,
                        headers=headers)


@router.delete("/api/entries/{entry_id}", status_code=204, response_model=None,
               responses=_errors(400, 401, 403, 404, 409, 428, 507))
def delete_entry(entry_id: str, services: ServicesDep, user: InstructorUser,
                 if_match: Annotated[str | None, IF_MATCH] = None) -> Response:
    """Delete an entry (instructors): its file goes and it leaves search at once.

    Needs `If-Match` with the entry's ETag, or * (428 without it; 409 with the current
    version when it is stale; 404 when there is no such entry)."""
    if if_match is None:
        raise PreconditionRequired(
            "Send If-Match with the entry's ETag (from GET /api/admin/entries/"
            f"{entry_id}), or If-Match: * to delete whatever version is there.")
    try:
        services.editor.delete(entry_id, by=user.name,
                               if_match=_entity_tag("If-Match", if_match))
    except VersionConflict as e:
        return _conflict(e)
    return Response(status_code=204)


def _entity_tag(header: str, value: str) -> str:
    """The version in an If-Match header: one strong entity tag (quoted, or bare), or *.
    A weak tag (W/"...") never matches: If-Match compares strongly."""
    value = value.strip()
    if value == "*":
        return ANY_VERSION
    tags = [t.strip() for t in value.split(",") if t.strip()]
    if len(tags) != 1:
        raise BadRequest(f"{header}: send one entity tag (the entry's ETag), or *.")
    tag = tags[0]
    if tag.startswith("W/"):
        return "weak " + tag
    return tag.removeprefix('"').removesuffix('"')


def _entry_fields(entry_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The editor's fields from a PUT body; KnowledgeBaseError for keys that are not fields
    of an entry and for an id other than the path's."""
    where = f"kb/{entry_id}.yaml"
    problems = [Problem(where, None, key, f"is not a field of an entry: the fields are "
                                          f"{', '.join(f for f in FIELDS if f != 'id')}")
                for key in body if key not in FIELDS and key not in READ_ONLY_KEYS]
    sent_id = body.get("id")
    if sent_id is not None and sent_id != entry_id:
        problems.append(Problem(where, None, "id", f"is {sent_id!r} but the address says "
                                                   f"{entry_id!r}: leave it out, or make "
                                                   "them the same"))
    if problems:
        raise KnowledgeBaseError(problems)
    fields = {k: v for k, v in body.items() if k in FIELDS}
    fields["id"] = entry_id
    return fields


def _conflict(e: VersionConflict, *, creating: bool = False) -> JSONResponse:
    """409 with the entry as it is now (and its ETag header), so the script can merge."""
    current = e.current
    if creating and current is not None:
        message = (f"{e.entry_id!r} already exists (If-None-Match: *): it is "
                   f"{etag(current)}. To replace it, send If-Match: {etag(current)}.")
    elif current is None:
        message = (f"{e.entry_id!r} does not exist any more (someone deleted it): send the "
                   "PUT without If-Match to create it again.")
    else:
        message = (f"{e.entry_id!r} changed since the version you sent: it is now "
                   f"{etag(current)}. Merge your change into `current` and send it again "
                   f"with If-Match: {etag(current)}.")
    body: dict[str, Any] = error_body("conflict", message)
    body["current"] = entry_source(current) if current is not None else None
    headers = {"ETag": etag(current)} if current is not None else None
    return JSONResponse(body, status_code=409, headers=headers)

