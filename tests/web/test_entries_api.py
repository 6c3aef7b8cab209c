"""The entries API for scripts: PUT / DELETE /api/entries/{id} with ETag and If-Match,
GET /api/admin/entries/{id}, and the /admin form's conflict message."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from indexer.kb import KnowledgeBase
from server.accounts import Accounts
from server.review.authoring import VersionConflict, entry_version
from server.services import Services
from tests.store.readback import audit_log

NEW_ID = "tensor-broadcasting"


def bearer(services: Services, name: str = "ian", role: str = "instructor") -> dict[str, str]:
    accounts = Accounts(services.store)
    accounts.add(name, role, None)
    return {"Authorization": f"Bearer {accounts.issue_token(name)}"}


def entry_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "question": "How does broadcasting work in PyTorch?",
        "alternate_questions": ["why can I add a vector to a matrix"],
        "answer": "Dimensions of size 1 are **stretched** to match.",
        "tags": ["chapter-4", "tensors"], "demo": None, "status": "published"}
    body.update(changes)
    return body


def answers(client: TestClient, question: str) -> str | None:
    reply = client.post("/api/chat", json={"message": question}).json()
    return reply["entry"]["id"] if reply["answered"] else None


def on_disk(services: Services) -> KnowledgeBase:
    return KnowledgeBase.load(services.kb.kb_dir)


# --- create --------------------------------------------------------------------------------
def test_put_creates_an_entry_live_in_search_at_once(client: TestClient,
                                                     services: Services) -> None:
    h = bearer(services)
    assert answers(client, "How does broadcasting work in PyTorch?") is None
    r = client.put(f"/api/entries/{NEW_ID}", json=entry_body(), headers=h)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/api/admin/entries/{NEW_ID}"
    saved = on_disk(services).get(NEW_ID)
    assert r.headers["etag"] == f'"{entry_version(saved)}"' == r.json()["etag"]
    # As saved: the answer is a YAML block, which ends with a newline.
    assert r.json() == {"id": NEW_ID, **entry_body(answer=entry_body()["answer"] + "\n"),
                        "etag": r.headers["etag"]}
    assert saved.tags == ["chapter-4", "tensors"]
    assert answers(client, "How does broadcasting work in PyTorch?") == NEW_ID
    assert answers(client, "why can I add a vector to a matrix") == NEW_ID
    event = audit_log(services.store)[0]
    assert (event.actor, event.action, event.target) == ("ian", "entry_create", NEW_ID)


def test_if_none_match_star_creates_only_a_new_entry(client: TestClient,
                                                     services: Services) -> None:
    h = {**bearer(services), "If-None-Match": "*"}
    assert client.put(f"/api/entries/{NEW_ID}", json=entry_body(), headers=h).status_code == 201
    r = client.put(f"/api/entries/{NEW_ID}", json=entry_body(answer="Other."), headers=h)
    assert r.status_code == 409
    body = r.json()
    assert body["error"]["code"] == "conflict" and "already exists" in body["error"]["message"]
    assert body["current"]["answer"] == entry_body()["answer"] + "\n"
    assert r.headers["etag"] == body["current"]["etag"]
    assert on_disk(services).get(NEW_ID).answer == entry_body()["answer"] + "\n"


# --- replace -------------------------------------------------------------------------------
def test_replacing_needs_if_match(client: TestClient, services: Services) -> None:
    h = bearer(services)
    before = (services.kb.kb_dir / "why-nonlinearities.yaml").read_text()
    r = client.put("/api/entries/why-nonlinearities", json=entry_body(), headers=h)
    assert r.status_code == 428
    assert r.json()["error"]["code"] == "precondition_required"
    assert "If-Match" in r.json()["error"]["message"]
    assert (services.kb.kb_dir / "why-nonlinearities.yaml").read_text() == before


def test_replace_with_the_current_etag_then_a_stale_one_conflicts(
        client: TestClient, services: Services) -> None:
    h = bearer(services)
    got = client.get("/api/admin/entries/why-nonlinearities", headers=h)
    assert got.status_code == 200
    tag = got.headers["etag"]
    assert tag == got.json()["etag"] == f'"{entry_version(services.kb.get("why-nonlinearities"))}"'
    edited = {**got.json(), "answer": got.json()["answer"] + "\nOne more line.\n"}
    r = client.put("/api/entries/why-nonlinearities", json=edited,
                   headers={**h, "If-Match": tag})
    assert r.status_code == 200, r.text
    new_tag = r.headers["etag"]
    assert new_tag != tag and r.json()["answer"].endswith("One more line.\n")
    assert on_disk(services).get("why-nonlinearities").answer.endswith("One more line.\n")
    # A second script still holding the old ETag must not overwrite that change.
    r = client.put("/api/entries/why-nonlinearities", json={**edited, "answer": "Lost update."},
                   headers={**h, "If-Match": tag})
    assert r.status_code == 409
    body = r.json()
    assert body["error"]["code"] == "conflict" and new_tag in body["error"]["message"]
    assert body["current"]["etag"] == new_tag == r.headers["etag"]
    assert body["current"]["answer"].endswith("One more line.\n")
    assert "Lost update" not in on_disk(services).get("why-nonlinearities").answer
    # If-Match: * replaces whatever is there.
    r = client.put("/api/entries/why-nonlinearities", json={**edited, "answer": "Forced."},
                   headers={**h, "If-Match": "*"})
    assert r.status_code == 200 and services.kb.get("why-nonlinearities").answer == "Forced.\n"
    actions = [e.action for e in audit_log(services.store)[:2]]
    assert actions == ["entry_update", "entry_update"]


def test_etag_is_the_same_on_every_read_and_changes_with_any_field(
        client: TestClient, services: Services) -> None:
    h = bearer(services)
    public = client.get("/api/entries/why-nonlinearities")
    admin = client.get("/api/admin/entries/why-nonlinearities", headers=h)
    assert public.headers["etag"] == admin.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', admin.headers["etag"])
    # Sending back exactly what was read changes nothing, not even the version.
    same = client.put("/api/entries/why-nonlinearities", json=admin.json(),
                      headers={**h, "If-Match": admin.headers["etag"]})
    assert same.status_code == 200 and same.headers["etag"] == admin.headers["etag"]
    # A change to the tags alone (not indexed) is a new version too.
    tags = client.put("/api/entries/why-nonlinearities",
                      json={**admin.json(), "tags": [*admin.json()["tags"], "extra-tag"]},
                      headers={**h, "If-Match": admin.headers["etag"]})
    assert tags.status_code == 200 and tags.headers["etag"] != admin.headers["etag"]
    assert client.get("/api/entries/why-nonlinearities").headers["etag"] == tags.headers["etag"]
    # A bare (unquoted) tag is accepted; a weak one never matches.
    r = client.put("/api/entries/why-nonlinearities", json=tags.json(),
                   headers={**h, "If-Match": tags.headers["etag"].strip('"')})
    assert r.status_code == 200
    r = client.put("/api/entries/why-nonlinearities", json=tags.json(),
                   headers={**h, "If-Match": "W/" + tags.headers["etag"]})
    assert r.status_code == 409


def test_putting_back_what_was_read_changes_no_entry(client: TestClient,
                                                      services: Services) -> None:
    """Every bundled entry survives GET then PUT unchanged: the same version, the same
    fields (answers with LaTeX backslashes too: the editor's YAML round trip never folds a
    line, where a fold after an escaped backslash used to turn `$\\max$` into `$\\ max$`)."""
    h = bearer(services)
    for entry_id, before in sorted(services.kb.entries.items()):
        got = client.get(f"/api/admin/entries/{entry_id}", headers=h)
        r = client.put(f"/api/entries/{entry_id}", json=got.json(),
                       headers={**h, "If-Match": got.headers["etag"]})
        assert r.status_code == 200, (entry_id, r.text)
        assert r.headers["etag"] == got.headers["etag"], entry_id
        assert services.kb.get(entry_id) == before


def test_put_with_if_match_on_a_deleted_entry_conflicts(client: TestClient,
                                                        services: Services) -> None:
    h = bearer(services)
    r = client.put(f"/api/entries/{NEW_ID}", json=entry_body(),
                   headers={**h, "If-Match": '"0123456789abcdef0123456789abcdef"'})
    assert r.status_code == 409 and r.json()["current"] is None
    assert "etag" not in r.headers and NEW_ID not in services.kb.entries


def test_bad_headers_are_400(client: TestClient, services: Services) -> None:
    h = bearer(services)
    url = "/api/entries/why-nonlinearities"
    for headers in ({"If-Match": '"a", "b"'}, {"If-None-Match": '"abc"'},
                    {"If-Match": "*", "If-None-Match": "*"}):
        r = client.put(url, json=entry_body(), headers={**h, **headers})
        assert r.status_code == 400, headers
        assert r.json()["error"]["code"] == "bad_request"
    r = client.put(url, content=b"{not json", headers={**h, "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"


# --- validation ----------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "field", "message"), [
    (entry_body(tags=["Not OK"]), "tags", "lowercase words joined by hyphens"),
    (entry_body(answer="", status="published"), "answer", "a published entry needs an answer"),
    (entry_body(status="done"), "status", "must be one of"),
    (entry_body(demo="demos/missing.py"), "demo", "does not exist"),
    (entry_body(question=5), "question", "should be text"),
    ({k: v for k, v in entry_body().items() if k != "question"}, "question", "is missing"),
    (entry_body(tag=["typo"]), "tag", "is not a field of an entry"),
    (entry_body(id="another-id"), "id", "the address says"),
    (entry_body(question="Why do we need ReLUs or other nonlinearities?"), "alternate_questions",
     "already a question of why-nonlinearities"),
])
def test_invalid_entries_are_422_with_the_field(client: TestClient, services: Services,
                                                body: dict[str, Any], field: str,
                                                message: str) -> None:
    r = client.put(f"/api/entries/{NEW_ID}", json=body, headers=bearer(services))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_entry"
    assert message in error["fields"][field], error
    assert NEW_ID not in services.kb.entries
    assert not (services.kb.kb_dir / f"{NEW_ID}.yaml").exists()


def test_an_invalid_id_in_the_path_is_422(client: TestClient, services: Services) -> None:
    r = client.put("/api/entries/Bad_Id", json=entry_body(), headers=bearer(services))
    assert r.status_code == 422 and "id" in r.json()["error"]["fields"]


# --- delete --------------------------------------------------------------------------------
def test_delete_needs_the_current_version_and_leaves_search_at_once(
        client: TestClient, services: Services) -> None:
    h = bearer(services)
    question = services.kb.get("why-nonlinearities").question
    assert answers(client, question) == "why-nonlinearities"
    url = "/api/entries/why-nonlinearities"
    assert client.delete(url, headers=h).status_code == 428
    stale = client.delete(url, headers={**h, "If-Match": '"0123456789abcdef0123456789abcdef"'})
    assert stale.status_code == 409
    assert stale.json()["current"]["id"] == "why-nonlinearities"
    tag = stale.headers["etag"]
    r = client.delete(url, headers={**h, "If-Match": tag})
    assert r.status_code == 204 and r.content == b""
    assert not (services.kb.kb_dir / "why-nonlinearities.yaml").exists()
    assert answers(client, question) != "why-nonlinearities"
    assert client.get(url).status_code == 404
    assert client.get("/api/admin/entries/why-nonlinearities", headers=h).status_code == 404
    again = client.delete(url, headers={**h, "If-Match": "*"})
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
    event = audit_log(services.store)[0]
    assert (event.actor, event.action, event.target) == ("ian", "entry_delete",
                                                         "why-nonlinearities")


def test_deleting_an_unanswered_entry_closes_its_review_item(client: TestClient,
                                                             services: Services) -> None:
    unanswered = services.kb.unanswered()[0]
    seeds = [i for i in services.store.review_items("open")
             if i.reason == "seed" and i.entry_id == unanswered.id]
    assert seeds
    r = client.delete(f"/api/entries/{unanswered.id}",
                      headers={**bearer(services), "If-Match": "*"})
    assert r.status_code == 204
    assert not [i for i in services.store.review_items("open") if i.entry_id == unanswered.id]


# --- who may ---------------------------------------------------------------------------------
def test_admin_get_shows_any_status_to_instructors_only(client: TestClient,
                                                        services: Services) -> None:
    draft = next(e for e in services.kb.entries.values() if not e.answerable)
    assert client.get(f"/api/entries/{draft.id}").status_code == 404
    r = client.get(f"/api/admin/entries/{draft.id}", headers=bearer(services))
    assert r.status_code == 200 and r.json()["status"] == draft.status.value
    assert client.get(f"/api/admin/entries/{draft.id}").status_code == 401
    ta = bearer(services, "tara", "ta")
    assert client.get(f"/api/admin/entries/{draft.id}", headers=ta).status_code == 403
    listed = client.get("/api/admin/entries", headers=bearer(services, "ivy")).json()
    assert [e["id"] for e in listed] == sorted(services.kb.entries)
    assert all(e["etag"] == f'"{entry_version(services.kb.get(e["id"]))}"' for e in listed)


def test_tas_may_not_write(client: TestClient, services: Services) -> None:
    ta = bearer(services, "tara", "ta")
    r = client.put(f"/api/entries/{NEW_ID}", json=entry_body(), headers=ta)
    assert r.status_code == 403 and NEW_ID not in services.kb.entries
    r = client.delete("/api/entries/why-nonlinearities", headers={**ta, "If-Match": "*"})
    assert r.status_code == 403 and "why-nonlinearities" in services.kb.entries


def test_a_login_session_needs_its_csrf_token(client: TestClient, services: Services) -> None:
    Accounts(services.store).add("ian", "instructor", "correct horse battery")
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"name": "ian", "password": "correct horse battery",
                                    "csrf_token": token, "next": "/admin"},
                    follow_redirects=False)
    assert r.status_code == 303
    admin = client.get("/admin/entries/new")
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', admin.text).group(1)  # type: ignore[union-attr]
    r = client.put(f"/api/entries/{NEW_ID}", json=entry_body())
    assert r.status_code == 403 and NEW_ID not in services.kb.entries
    r = client.put(f"/api/entries/{NEW_ID}", json=entry_body(), headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201
    r = client.delete(f"/api/entries/{NEW_ID}", headers={"If-Match": r.headers["etag"],
                                                         "X-CSRF-Token": csrf})
    assert r.status_code == 204


# --- concurrency -----------------------------------------------------------------------------
def test_two_writers_with_the_same_version_one_wins(services: Services) -> None:
    """The version is compared under the KB's writer lock: of two saves based on the same
    version, exactly one is written."""
    base = services.kb.get("why-nonlinearities")
    version = entry_version(base)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def save(answer: str) -> None:
        fields = {**base.model_dump(mode="json"), "answer": answer}
        barrier.wait()
        try:
            services.editor.save(fields, by="ian", entry_id=base.id, if_match=version)
            outcomes.append(answer)
        except VersionConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=save, args=(a,)) for a in ("First.", "Second.")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 2 and outcomes.count("conflict") == 1, outcomes
    winner = next(o for o in outcomes if o != "conflict")
    assert on_disk(services).get(base.id).answer == winner + "\n"


def test_a_link_between_read_and_write_is_not_lost(client: TestClient,
                                                   services: Services) -> None:
    """A TA's link adds a phrasing after the script read the entry: the script's PUT with
    the old ETag gets 409 and the phrasing stays."""
    h = bearer(services)
    got = client.get("/api/admin/entries/why-nonlinearities", headers=h)
    services.kb.add_alternate("why-nonlinearities", "what is the point of an activation")
    r = client.put("/api/entries/why-nonlinearities", json=got.json(),
                   headers={**h, "If-Match": got.headers["etag"]})
    assert r.status_code == 409
    assert "what is the point of an activation" in r.json()["current"]["alternate_questions"]


# --- the /admin form -------------------------------------------------------------------------
def test_admin_form_shows_a_conflict_instead_of_overwriting(client: TestClient,
                                                            services: Services) -> None:
    h = bearer(services)
    page = client.get("/admin/entries/why-nonlinearities", headers=h)
    version = re.search(r'name="version" value="([0-9a-f]+)"', page.text)
    assert version and f'"{version.group(1)}"' == client.get(
        "/api/entries/why-nonlinearities").headers["etag"]
    entry = services.kb.get("why-nonlinearities")
    form = {"question": entry.question, "alternate_questions": "\n".join(entry.alternate_questions),
            "answer": "My edit in the browser.", "tags": ", ".join(entry.tags),
            "demo": entry.demo or "", "status": "published", "version": version.group(1)}
    # Meanwhile a script replaces the entry.
    r = client.put("/api/entries/why-nonlinearities",
                   json={**entry.model_dump(mode="json"), "answer": "The script's answer."},
                   headers={**h, "If-Match": f'"{version.group(1)}"'})
    assert r.status_code == 200
    r = client.post("/admin/entries/why-nonlinearities", data=form, headers=h,
                    follow_redirects=False)
    assert r.status_code == 409
    assert "someone else saved this entry" in r.text
    assert "My edit in the browser." in r.text  # nothing typed is lost
    assert "The script&#39;s answer." in r.text  # their version, to compare
    assert services.kb.get("why-nonlinearities").answer == "The script's answer.\n"
    current = re.search(r'name="version" value="([0-9a-f]+)"', r.text)
    assert current and current.group(1) == entry_version(services.kb.get("why-nonlinearities"))
    # Saving again, having seen their version, replaces it.
    r = client.post("/admin/entries/why-nonlinearities", data={**form, "version": current.group(1)},
                    headers=h, follow_redirects=False)
    assert r.status_code == 303
    assert services.kb.get("why-nonlinearities").answer == "My edit in the browser.\n"


def test_admin_form_says_when_the_entry_was_deleted(client: TestClient,
                                                    services: Services) -> None:
    h = bearer(services)
    page = client.get("/admin/entries/why-nonlinearities", headers=h)
    version = re.search(r'name="version" value="([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]
    services.editor.delete("why-nonlinearities", by="someone")
    r = client.post("/admin/entries/why-nonlinearities", headers=h, follow_redirects=False,
                    data={"question": "Why ReLU?", "answer": "Kept text.", "status": "draft",
                          "version": version})
    assert r.status_code == 409 and "someone deleted this entry" in r.text
    assert "Kept text." in r.text and "why-nonlinearities" not in services.kb.entries


# --- documentation ---------------------------------------------------------------------------
def test_openapi_documents_the_endpoints_and_their_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    put = spec["paths"]["/api/entries/{entry_id}"]["put"]
    delete = spec["paths"]["/api/entries/{entry_id}"]["delete"]
    for op, codes in ((put, {"200", "201", "400", "401", "403", "409", "422", "428"}),
                      (delete, {"204", "401", "403", "404", "409", "428"})):
        assert codes <= set(op["responses"]), op["responses"].keys()
        assert {p["name"] for p in op["parameters"]} >= {"entry_id", "if-match"}
    conflict = put["responses"]["409"]["content"]["application/json"]["schema"]["$ref"]
    assert conflict.endswith("/VersionConflictResponse")
    error = put["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    assert error.endswith("/ErrorBody")
    assert "fields" in spec["components"]["schemas"]["ErrorDetail"]["properties"]
    assert "current" in spec["components"]["schemas"]["VersionConflictResponse"]["properties"]
    body = put["requestBody"]["content"]["application/json"]["schema"]
    assert {"question", "answer", "tags", "status"} <= set(body["properties"])
    assert body["additionalProperties"] is False
    get_admin = spec["paths"]["/api/admin/entries/{entry_id}"]["get"]
    assert get_admin["responses"]["200"]["content"]["application/json"]["schema"][
        "$ref"].endswith("/EntrySource")
