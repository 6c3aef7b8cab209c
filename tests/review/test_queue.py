"""The review queue: grouping, link / draft / dismiss through the library and the API."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from indexer.kb import KnowledgeBase
from indexer.schema import slugify
from server.review.queue import ItemClosed, NotAllowed, ReviewQueue
from server.services import Services
from server.web.auth import Accounts
from tests.store.readback import audit_log

OFF_TOPIC = "xylophone quartet rehearsal schedule"


def ask(client: TestClient, message: str) -> dict:
    r = client.post("/api/chat", json={"message": message})
    assert r.status_code == 200, r.text
    return r.json()


def staff(services: Services, name: str = "tara", role: str = "ta") -> dict[str, str]:
    """Bearer headers for a new staff member."""
    accounts = Accounts(services.store)
    accounts.add(name, role, None)  # token only: no slow password hash needed
    return {"Authorization": f"Bearer {accounts.issue_token(name)}"}


def queue(services: Services, threshold: float = 0.75) -> ReviewQueue:
    return ReviewQueue(services.store, services.kb, services.searcher, threshold)


def test_seed_entries_are_in_the_queue_from_the_start(services: Services) -> None:
    items = [i for i in services.store.review_items() if i.reason == "seed"]
    assert {i.entry_id for i in items} == {e.id for e in services.kb.unanswered()} == {
        "sgd-limitations", "worry-about-ai"}
    # filed at start-up: embedded when opened, grouped before the first request
    assert all(i.embedding is not None and i.group_key == i.id for i in items)
    assert services.review_queue.ensure_seed_items() == 0  # idempotent


def test_unanswered_question_appears_in_the_api(client: TestClient, services: Services) -> None:
    reply = ask(client, OFF_TOPIC)
    assert reply["answered"] is False and reply["review_id"]
    r = client.get("/api/review", headers=staff(services))
    assert r.status_code == 200
    body = r.json()
    ids = [i["id"] for g in body["groups"] for i in g["items"]]
    assert reply["review_id"] in ids
    group = next(g for g in body["groups"] if g["items"][0]["id"] == reply["review_id"])
    assert group["count"] == 1 and group["question"] == OFF_TOPIC
    assert {"key", "first_asked", "last_asked", "suggestions", "reasons"} <= set(group)
    assert body["open"] == len(ids)


def test_near_duplicates_are_grouped_and_sorted(services: Services) -> None:
    store = services.store
    dim = services.searcher.embedder.dimension
    a = np.zeros(dim, np.float32)
    a[0] = 1
    b = np.zeros(dim, np.float32)
    b[0], b[1] = 0.95, np.sqrt(1 - 0.95**2)
    c = np.zeros(dim, np.float32)
    c[2] = 1
    first = store.open_review_item(None, "how do I center a tensor", reason="unanswered",
                                   suggestions=[], embedding=a.tobytes())
    store.open_review_item(None, "how can I centre tensors", reason="unanswered",
                           suggestions=[], embedding=b.tobytes())
    store.open_review_item(None, "something else entirely", reason="unanswered",
                           suggestions=[], embedding=c.tobytes())
    groups = queue(services).groups()
    top = groups[0]
    assert top.count == 2 and top.key == first
    assert top.texts() == ["how do I center a tensor", "how can I centre tensors"]
    assert all(g.count == 1 for g in groups[1:])
    # asking again joins the same group
    store.open_review_item(None, "centering a tensor?", reason="unanswered", suggestions=[],
                           embedding=a.tobytes())
    assert queue(services).groups()[0].count == 3
    # reading saved no group keys; settling (at start-up, before each action) saves them,
    # and saved keys stay
    assert queue(services, threshold=1.01).groups()[0].count == 1
    queue(services).settle()
    assert queue(services, threshold=1.01).groups()[0].count == 3


def test_questions_matching_a_seed_entry_join_its_group(services: Services) -> None:
    """The chat route files a question that matches an unanswered entry under that entry."""
    rid = services.store.open_review_item(None, "what can go wrong with plain SGD",
                                          reason="unanswered", suggestions=[],
                                          entry_id="sgd-limitations")
    group = next(g for g in queue(services).groups() if rid in [i.id for i in g.items])
    assert group.count == 2 and group.entry_id == "sgd-limitations"
    assert group.question == services.kb.get("sgd-limitations").question
    template = queue(services).draft_template(rid)
    assert template["id"] == "sgd-limitations"
    assert "what can go wrong with plain SGD" in template["alternate_questions"]


def test_not_helpful_feedback_is_filed_when_recorded(client: TestClient,
                                                     services: Services) -> None:
    r = client.post("/api/feedback", json={"message": "why do we need relu",
                                           "entry_id": "why-nonlinearities", "helpful": False})
    assert r.status_code == 200, r.text
    rid = r.json()["review_id"]
    item = services.store.review_item(rid)
    assert item.embedding is not None and item.suggestions  # stored with the item
    group = next(g for g in queue(services).groups() if g.items[0].id == rid)
    assert group.entry_id == "why-nonlinearities"
    assert "not_helpful" in group.to_dict()["reasons"]
    assert group.suggestions[0]["id"] == "why-nonlinearities"


def test_items_without_embeddings_are_filed_in_memory_then_saved(services: Services) -> None:
    """An item stored without embedding or suggestions (by an older server, or before a model
    change) is filed in memory for reads, and saved only when the queue settles."""
    rid = services.store.record_feedback("why do we need relu", "why-nonlinearities", False,
                                         client="c")
    assert rid
    q = queue(services)
    group = next(g for g in q.groups() if g.items[0].id == rid)
    assert group.suggestions and group.entry_id == "why-nonlinearities"
    stored = services.store.review_item(rid)
    assert (stored.embedding, stored.group_key, stored.suggestions) == (None, None, [])
    q.settle()
    item = services.store.review_item(rid)
    assert item.embedding is not None and item.group_key == group.key
    assert item.suggestions == group.items[0].suggestions


def test_an_action_saves_the_grouping_it_acted_on(services: Services) -> None:
    dim = services.searcher.embedder.dimension
    v = np.zeros(dim, np.float32)
    v[3] = 1
    ids = [services.store.open_review_item(None, t, reason="unanswered", suggestions=[],
                                           embedding=v.tobytes())
           for t in ("what is a quartet", "quartets: what are they")]
    other = services.store.open_review_item(None, OFF_TOPIC, reason="unanswered",
                                            suggestions=[])
    q = queue(services)
    group = q.group_of(ids[1])
    assert {i.id for i in group} == set(ids)
    assert all(services.store.review_item(i).group_key is None for i in ids)  # read only
    assert sorted(q.dismiss(ids[1], "off-topic", by="tara")) == sorted(ids)
    assert {services.store.review_item(i).group_key for i in ids} == {group[0].id}
    assert services.store.review_item(other).group_key == other  # the rest is saved too


def test_link_adds_the_phrasing_and_answers_it(client: TestClient, services: Services) -> None:
    question = "wut does the squiggle nonlinearity even do for my network"
    reply = ask(client, question)
    assert not reply["answered"], "the test needs a phrasing the bot does not answer yet"
    r = client.post(f"/api/review/{reply['review_id']}/link",
                    json={"entry_id": "why-nonlinearities"}, headers=staff(services))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["added"] == [question] and reply["review_id"] in body["linked"]
    assert question in services.kb.get("why-nonlinearities").alternate_questions
    text = (services.kb.kb_dir / "why-nonlinearities.yaml").read_text()
    assert question in text
    start = time.monotonic()
    again = ask(client, question)
    assert again["answered"] and again["entry"]["id"] == "why-nonlinearities"
    assert time.monotonic() - start < 1.0  # the index was updated by the link itself
    item = services.store.review_item(reply["review_id"])
    assert (item.status, item.resolved_by) == ("linked", "tara")
    event = audit_log(services.store)[0]
    assert (event.actor, event.action) == ("tara", "link")
    assert event.details["entry_id"] == "why-nonlinearities"


def test_link_keeps_comments_and_layout(services: Services) -> None:
    path = services.kb.kb_dir / "why-nonlinearities.yaml"
    original = path.read_text()
    path.write_text("# a note the instructor wrote\n" + original)
    services.kb.reload_entry("why-nonlinearities")
    rid = services.store.open_review_item(None, "relu what for", reason="unanswered",
                                          suggestions=[])
    queue(services).link(rid, "why-nonlinearities", by="tara")
    after = path.read_text()
    assert after.startswith("# a note the instructor wrote\n")
    assert after.replace("  - relu what for\n", "") .replace("# a note the instructor wrote\n",
                                                             "") == original


def test_link_twice_is_a_conflict(client: TestClient, services: Services) -> None:
    rid = services.store.open_review_item(None, OFF_TOPIC, reason="unanswered", suggestions=[])
    h = staff(services)
    assert client.post(f"/api/review/{rid}/link", json={"entry_id": "why-nonlinearities"},
                       headers=h).status_code == 200
    r = client.post(f"/api/review/{rid}/link", json={"entry_id": "why-nonlinearities"},
                    headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


def test_link_errors(client: TestClient, services: Services) -> None:
    h = staff(services)
    rid = services.store.open_review_item(None, "x y z", reason="unanswered", suggestions=[])
    r = client.post("/api/review/nope/link", json={"entry_id": "why-nonlinearities"}, headers=h)
    assert r.status_code == 404
    r = client.post(f"/api/review/{rid}/link", json={"entry_id": "no-such-entry"}, headers=h)
    assert r.status_code == 404
    r = client.post(f"/api/review/{rid}/link", json={"entry_id": "sgd-limitations"}, headers=h)
    assert r.status_code == 400 and "draft its answer" in r.json()["error"]["message"]
    r = client.post(f"/api/review/{rid}/link", json={}, headers=h)
    assert r.status_code == 422


def test_linking_a_question_of_another_entry_is_skipped(services: Services) -> None:
    other = services.kb.get("weight-initialization").question
    rid = services.store.open_review_item(None, other, reason="unanswered", suggestions=[])
    result = queue(services).link(rid, "why-nonlinearities", by="tara")
    assert result.added == [] and "weight-initialization" in result.skipped[0]["reason"]
    assert services.store.review_item(rid).status == "linked"


def test_link_whole_group(services: Services) -> None:
    dim = services.searcher.embedder.dimension
    v = np.zeros(dim, np.float32)
    v[0] = 1
    ids = [services.store.open_review_item(None, t, reason="unanswered", suggestions=[],
                                           embedding=v.tobytes())
           for t in ("relu purpose?", "what is relu for", "Relu purpose")]
    result = queue(services).link(ids[1], "why-nonlinearities", by="tara")
    assert sorted(result.linked) == sorted(ids)
    assert result.added == ["relu purpose?", "what is relu for"]  # "Relu purpose" is the same


def test_two_tas_linking_at_once_lose_nothing(client: TestClient, services: Services) -> None:
    """Two TAs link different questions to the same entry at the same moment: both land."""
    h1, h2 = staff(services, "tara"), staff(services, "tom")
    questions = ["first concurrent phrasing about activations",
                 "second concurrent phrasing about activations"]
    ids = [services.store.open_review_item(None, q, reason="unanswered", suggestions=[])
           for q in questions]
    barrier = threading.Barrier(2)
    results: list[int] = []

    def go(rid: str, headers: dict[str, str]) -> None:
        barrier.wait()
        r = client.post(f"/api/review/{rid}/link", json={"entry_id": "why-nonlinearities",
                                                         "group": False}, headers=headers)
        results.append(r.status_code)

    pairs = zip(ids, (h1, h2), strict=True)
    threads = [threading.Thread(target=go, args=pair) for pair in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200, 200]
    on_disk = KnowledgeBase.load(services.kb.kb_dir).get("why-nonlinearities")
    assert set(questions) <= set(on_disk.alternate_questions)
    for q in questions:
        assert ask(client, q)["entry"]["id"] == "why-nonlinearities"


def test_two_workers_linking_at_once_lose_nothing(services: Services) -> None:
    """Two server processes (two KnowledgeBase objects on one folder) write the same file."""
    kb2 = KnowledgeBase.load(services.kb.kb_dir)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def go(kb: KnowledgeBase, prefix: str) -> None:
        try:
            barrier.wait()
            for i in range(10):
                kb.add_alternate("why-nonlinearities", f"{prefix} phrasing number {i}")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=go, args=(k, p))
               for k, p in ((services.kb, "alpha"), (kb2, "beta"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    alts = KnowledgeBase.load(services.kb.kb_dir).get("why-nonlinearities").alternate_questions
    for p in ("alpha", "beta"):
        assert {f"{p} phrasing number {i}" for i in range(10)} <= set(alts)


def test_draft_saves_a_new_entry(client: TestClient, services: Services) -> None:
    reply = ask(client, OFF_TOPIC)
    h = staff(services)
    r = client.get(f"/api/review/{reply['review_id']}", headers=h)
    assert r.status_code == 200
    template = r.json()["draft"]
    assert template["question"] == OFF_TOPIC and template["id"] == slugify(OFF_TOPIC)
    assert template["status"] == "draft"
    fields = {**template, "answer": "Margherita, obviously.", "tags": ["off-topic"]}
    r = client.post(f"/api/review/{reply['review_id']}/draft", json=fields, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["entry"] == {"id": template["id"], "question": OFF_TOPIC, "status": "draft",
                                 "alternate_questions": []}
    assert (services.kb.kb_dir / f"{template['id']}.yaml").is_file()
    assert ask(client, OFF_TOPIC)["answered"] is False  # drafts are never served
    assert services.store.review_item(reply["review_id"]).status == "drafted"


@pytest.mark.parametrize(("question", "expected_id"), [
    ("Qu'est-ce qu'un réseau zèbre ?", "quest-ce-quun-reseau-zebre"),
    ("Isn’t zebra dropout just noise?", "isnt-zebra-dropout-just-noise"),
    ("Τι είναι ένα zebra δίκτυο;", "zebra"),
])
def test_a_draft_prefilled_from_any_question_saves_as_it_is(client: TestClient,
                                                            services: Services, question: str,
                                                            expected_id: str) -> None:
    """The draft form's id comes from the one slug function: accents folded, apostrophes
    dropped, always an id the schema accepts, so Save works without touching it."""
    reply = ask(client, question)
    h = staff(services)
    template = client.get(f"/api/review/{reply['review_id']}", headers=h).json()["draft"]
    assert template["id"] == expected_id
    r = client.post(f"/api/review/{reply['review_id']}/draft",
                    json={**template, "answer": "An answer."}, headers=h)
    assert r.status_code == 200, r.text
    assert (services.kb.kb_dir / f"{expected_id}.yaml").is_file()


def test_draft_published_by_instructor_is_answerable_at_once(client: TestClient,
                                                             services: Services) -> None:
    reply = ask(client, OFF_TOPIC)
    fields = {"id": "pizza", "question": OFF_TOPIC, "answer": "Margherita.", "status": "published"}
    ta = staff(services, "tara", "ta")
    r = client.post(f"/api/review/{reply['review_id']}/draft", json=fields, headers=ta)
    assert r.status_code == 403 and "Only instructors publish" in r.json()["error"]["message"]
    prof = staff(services, "ian", "instructor")
    r = client.post(f"/api/review/{reply['review_id']}/draft", json=fields, headers=prof)
    assert r.status_code == 200, r.text
    again = ask(client, OFF_TOPIC)
    assert again["answered"] and again["entry"]["id"] == "pizza"


def test_draft_validation_errors_name_the_field(client: TestClient, services: Services) -> None:
    reply = ask(client, OFF_TOPIC)
    h = staff(services)
    bad = {"id": "Not An Id", "question": OFF_TOPIC, "status": "draft"}
    r = client.post(f"/api/review/{reply['review_id']}/draft", json=bad, headers=h)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_entry" and "lowercase" in err["fields"]["id"]
    taken = {"id": "why-nonlinearities", "question": OFF_TOPIC, "status": "draft"}
    r = client.post(f"/api/review/{reply['review_id']}/draft", json=taken, headers=h)
    assert r.status_code == 422 and "already exists" in r.json()["error"]["fields"]["id"]
    dup = {"id": "fresh-one", "question": services.kb.get("why-nonlinearities").question}
    r = client.post(f"/api/review/{reply['review_id']}/draft", json=dup, headers=h)
    assert r.status_code == 422 and "why-nonlinearities" in r.json()["error"]["message"]
    assert services.store.review_item(reply["review_id"]).status == "open"


def test_draft_for_a_seed_item_writes_the_existing_entry(services: Services) -> None:
    seed = next(i for i in services.store.review_items() if i.entry_id == "sgd-limitations")
    q = queue(services)
    template = q.draft_template(seed.id)
    assert template["id"] == "sgd-limitations" and template["updates_existing"]
    fields = {**template, "answer": "SGD can stall on plateaus and saddle points.",
              "status": "published"}
    with pytest.raises(NotAllowed):
        q.draft(seed.id, fields, by="tara", may_publish=False)
    saved = q.draft(seed.id, fields, by="ian", may_publish=True)
    assert saved.status.value == "published" and services.kb.get("sgd-limitations").answerable
    assert services.store.review_item(seed.id).status == "drafted"
    assert services.searcher.search(template["question"]).entry.id == "sgd-limitations"


def test_dismiss(client: TestClient, services: Services) -> None:
    reply = ask(client, OFF_TOPIC)
    h = staff(services)
    r = client.post(f"/api/review/{reply['review_id']}/dismiss", json={"reason": "off-topic"},
                    headers=h)
    assert r.status_code == 200 and r.json() == {"dismissed": [reply["review_id"]],
                                                 "reason": "off-topic"}
    item = services.store.review_item(reply["review_id"])
    assert item.status == "dismissed" and item.resolution == {"reason": "off-topic"}
    assert reply["review_id"] not in [i["id"] for g in client.get(
        "/api/review", headers=h).json()["groups"] for i in g["items"]]
    r = client.post(f"/api/review/{reply['review_id']}/dismiss", json={"reason": "x"}, headers=h)
    assert r.status_code == 409
    with pytest.raises(ItemClosed):
        queue(services).dismiss(reply["review_id"], "again", by="tara")


def test_dismiss_needs_a_reason(client: TestClient, services: Services) -> None:
    rid = services.store.open_review_item(None, "x", reason="unanswered", suggestions=[])
    h = staff(services)
    assert client.post(f"/api/review/{rid}/dismiss", json={"reason": ""},
                       headers=h).status_code == 422
    assert client.post(f"/api/review/{rid}/dismiss", json={"reason": "   "},
                       headers=h).status_code == 400
