"""A near miss in a real browser: "This may answer it", Yes and No.

Headless Debian Chromium against a live server with the hashing embedder, whose
scores put the question below just under the bar for mse-vs-outliers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from indexer.embedders import HashingEmbedder
from server.services import Services
from tests.live import live_settings, serve

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NEAR = "mse outliers"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Services]]:
    root = tmp_path_factory.mktemp("near-miss-live")
    settings = live_settings(root, model="hashing", sandbox_enabled=False)
    services = Services.start(settings, embedder=HashingEmbedder())
    with serve(settings, services) as url:
        yield url, services


def ask_near_miss(page: Page) -> None:
    page.goto("/")
    page.fill("#question", NEAR)
    page.press("#question", "Enter")
    box = page.locator(".msg-bot .near-miss")
    expect(box).to_be_visible()
    expect(box.locator(".near-miss-label")).to_have_text("This may answer it:")
    expect(box.locator(".near-miss-link")).to_have_text(
        "Why use MSE when it's so sensitive to outliers?")
    expect(box.locator(".near-miss-link")).to_have_attribute("href", "/entries/mse-vs-outliers")
    assert len(box.locator(".near-miss-excerpt").inner_text()) > 20
    # the near miss is not listed a second time among the closest answers
    expect(page.locator(".msg-bot .suggestion-list a[href='/entries/mse-vs-outliers']")
           ).to_have_count(0)


def review_item_of_last_reply(page: Page, services: Services):  # type: ignore[no-untyped-def]
    history = page.evaluate("JSON.parse(sessionStorage.getItem('askta.conversation'))")
    return services.store.review_item(history[-1]["reply"]["review_id"])


def test_yes_suggests_the_wording_to_the_tas(page: Page,
                                             live_server: tuple[str, Services]) -> None:
    ask_near_miss(page)
    page.get_by_role("button", name="Yes, that's it").click()
    status = page.locator(".near-miss-status")
    expect(status).to_contain_text("The TAs will add your wording")
    expect(page.get_by_role("button", name="Yes, that's it")).to_have_attribute(
        "aria-pressed", "true")
    item = review_item_of_last_reply(page, live_server[1])
    assert item.suggestions[0]["id"] == "mse-vs-outliers" and item.suggestions[0]["confirmed"]
    page.reload()  # the verdict is kept with the conversation
    expect(page.locator(".near-miss-status")).to_contain_text("The TAs will add your wording")


def test_no_keeps_the_question_queued(page: Page, live_server: tuple[str, Services]) -> None:
    ask_near_miss(page)
    page.get_by_role("button", name="No", exact=True).click()
    expect(page.locator(".near-miss-status")).to_have_text(
        "Thanks. Your question stays with the TAs.")
    item = review_item_of_last_reply(page, live_server[1])
    assert item.status == "open" and not any(s.get("confirmed") for s in item.suggestions or [])
