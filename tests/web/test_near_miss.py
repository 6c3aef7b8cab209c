"""Near misses: "This may answer it", and the student's yes or no (POST /api/chat/near-miss)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from server.accounts import Accounts
from server.services import Services
from server.web.presenters import excerpt

# With the hashing embedder this question scores just under the bar for mse-vs-outliers.
NEAR = "mse outliers"


def staff(services: Services) -> dict[str, str]:
    accounts = Accounts(services.store)
    accounts.add("tara", "ta", None)
    return {"Authorization": f"Bearer {accounts.issue_token('tara')}"}


def routed_near_miss(client: TestClient) -> dict:
    body = client.post("/api/chat", json={"message": NEAR}).json()
    assert body["answered"] is False and body["review_id"]
    assert body["near_miss"] is not None, "the test needs a question just under the bar"
    return body


def test_a_close_routed_question_offers_a_near_miss(client: TestClient) -> None:
    body = routed_near_miss(client)
    near = body["near_miss"]
    assert near["id"] == "mse-vs-outliers"
    assert near["question"] == "Why use MSE when it's so sensitive to outliers?"
    assert 20 < len(near["excerpt"]) <= 221 and "```" not in near["excerpt"]


def test_an_answered_question_has_no_near_miss(client: TestClient) -> None:
    body = client.post("/api/chat", json={"message": "why do we need relu"}).json()
    assert body["answered"] is True and body["near_miss"] is None


def test_yes_makes_the_entry_the_confirmed_first_suggestion(client: TestClient,
                                                            services: Services) -> None:
    body = routed_near_miss(client)
    r = client.post("/api/chat/near-miss", json={
        "review_id": body["review_id"], "entry_id": "mse-vs-outliers", "accepted": True})
    assert r.status_code == 200 and r.json() == {"recorded": True,
                                                  "review_id": body["review_id"]}
    item = services.store.review_item(body["review_id"])
    assert item.status == "open" and item.entry_id == "mse-vs-outliers"
    assert item.suggestions[0]["id"] == "mse-vs-outliers" and item.suggestions[0]["confirmed"]
    headers = staff(services)
    groups = client.get("/api/review", headers=headers).json()["groups"]
    group = next(g for g in groups if any(i["id"] == body["review_id"] for i in g["items"]))
    assert group["suggestions"][0] == {**group["suggestions"][0], "id": "mse-vs-outliers",
                                       "confirmed": True}
    # one click for the TA: the student's wording becomes an alternate phrasing
    r = client.post(f"/api/review/{body['review_id']}/link",
                    json={"entry_id": "mse-vs-outliers"}, headers=headers)
    assert r.status_code == 200, r.text
    assert NEAR in services.kb.get("mse-vs-outliers").alternate_questions


def test_no_leaves_the_question_queued_as_it_was(client: TestClient, services: Services) -> None:
    body = routed_near_miss(client)
    before = services.store.review_item(body["review_id"])
    r = client.post("/api/chat/near-miss", json={
        "review_id": body["review_id"], "entry_id": "mse-vs-outliers", "accepted": False})
    assert r.status_code == 200
    after = services.store.review_item(body["review_id"])
    assert after.status == "open" and after.entry_id == before.entry_id
    assert not any(s.get("confirmed") for s in after.suggestions or [])


def test_near_miss_errors(client: TestClient, services: Services) -> None:
    body = routed_near_miss(client)
    url = "/api/chat/near-miss"
    r = client.post(url, json={"review_id": "0123456789ab", "entry_id": "mse-vs-outliers",
                               "accepted": True})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.post(url, json={"review_id": body["review_id"], "entry_id": "no-such-entry",
                               "accepted": True})
    assert r.status_code == 404
    r = client.post(url, json={"review_id": "not hex!", "entry_id": "x", "accepted": True})
    assert r.status_code == 422
    client.post(f"/api/review/{body['review_id']}/dismiss", json={"reason": "duplicate"},
                headers=staff(services))
    r = client.post(url, json={"review_id": body["review_id"], "entry_id": "mse-vs-outliers",
                               "accepted": True})
    assert r.status_code == 409 and "already dismissed" in r.json()["error"]["message"]


def test_excerpt_is_plain_text_cut_at_a_word() -> None:
    text = "**Bold** start with `code` and a [link](https://x.org).\n\n```python\nx = 1\n```\n" \
        + "word " * 100
    out = excerpt(text, limit=60)
    assert out.startswith("Bold start with code and a link.")
    assert out.endswith("…") and len(out) <= 61 and "```" not in out and "x = 1" not in out
    assert excerpt("short answer") == "short answer"
