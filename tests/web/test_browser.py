"""The pages in a real browser: headless Debian Chromium driven by Playwright.

One live server on 127.0.0.1 (a free port) serves a private copy of the KB with
the real embedding model and the real sandbox. A failing test leaves a
screenshot in test-artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from indexer.embedders import SentenceTransformerEmbedder
from server.services import Services
from tests.live import TIMEOUT_MS, live_settings, screenshot, serve

pytestmark = [pytest.mark.slow, pytest.mark.browser]

HOSTILE = "<script>window.__pwned = 1</script>"
HOSTILE_ENTRY = f"""\
id: hostile-entry
question: "Is {HOSTILE} dangerous in an entry?"
answer: |
  Text {HOSTILE} and <img src=x onerror="window.__pwned = 2">
  and [a link](javascript:window.__pwned=3).

  <svg onload="window.__pwned = 4"></svg>
tags: [security]
status: published
"""


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory,
                real_embedder: SentenceTransformerEmbedder) -> Iterator[tuple[str, Services]]:
    """The app with the real model and sandbox, plus an entry full of hostile HTML."""
    root = tmp_path_factory.mktemp("live")
    settings = live_settings(root, sandbox_pool_size=1, sandbox_gpu_pool_size=1)
    (settings.kb_dir / "hostile-entry.yaml").write_text(HOSTILE_ENTRY)
    services = Services.start(settings, embedder=real_embedder)
    with serve(settings, services) as url:
        yield url, services


def ask(page: Page, question: str) -> None:
    page.goto("/")
    page.fill("#question", question)
    page.press("#question", "Enter")


def test_a_seed_question_gets_its_answer(page: Page) -> None:
    p = page
    ask(p, "What happens if I remove the activation functions?")
    title = p.locator(".msg-bot .answer-title a")
    title.wait_for()
    assert title.inner_text() == "Why do we need ReLUs or other nonlinearities?"
    assert title.get_attribute("href") == "/entries/why-nonlinearities"
    assert p.locator(".msg-user .msg-text").inner_text() == (
        "What happens if I remove the activation functions?")
    assert p.locator(".msg-bot .answer .katex").count() > 0
    assert p.locator(".msg-bot .answer pre.highlight").count() == 1
    p.get_by_role("button", name="Helpful", exact=True).click()
    status = p.locator(".feedback-status")
    expect(status).to_have_text("Thanks for letting us know!")
    p.reload()
    expect(p.locator(".msg-bot .answer-title a")).to_have_count(1)


def test_an_off_topic_question_gets_the_honest_reply(page: Page) -> None:
    p = page
    ask(p, "Which pizza place near campus delivers the latest at night?")
    card = p.locator(".msg-bot .answer-card.unanswered")
    card.wait_for()
    assert "sent to the TAs" in card.inner_text()
    assert p.locator(".msg-bot .answer-title a").count() == 0


def test_run_streams_output_and_a_plot(page: Page, live_server: tuple[str, Services]) -> None:
    services = live_server[1]
    assert services.sandbox is not None, f"the sandbox must run here: {services.sandbox_error}"
    p = page
    p.goto("/entries/why-nonlinearities")
    p.get_by_role("button", name="Run").click()
    status = p.locator("#demo-status")
    expect(status).to_have_attribute("data-state", "done", timeout=TIMEOUT_MS)
    assert status.inner_text().startswith("Done in ")
    # each line arrived as its own event and was appended as it came
    nodes = p.evaluate("document.getElementById('demo-stdout').childNodes.length")
    assert nodes >= 2
    assert p.locator("#demo-stdout").inner_text().strip()
    img = p.locator("#demo-images img").first
    img.wait_for()
    assert p.evaluate("document.querySelector('#demo-images img').naturalWidth") > 100
    # the next visit shows the cached output at once
    p.reload()
    assert p.locator("#demo-status").get_attribute("data-state") == "cached"
    assert p.locator("#demo-images img").count() >= 1


def test_script_in_an_entry_or_a_question_never_runs(page: Page) -> None:
    p = page
    p.goto("/entries/hostile-entry")
    heading = p.locator("#entry-title")
    assert HOSTILE in heading.inner_text()
    assert HOSTILE in p.locator("#answer").inner_text()
    ask(p, f"Is {HOSTILE} dangerous in an entry? <img src=x onerror='window.__pwned = 5'>")
    p.locator(".msg-bot").wait_for()
    assert HOSTILE in p.locator(".msg-user .msg-text").inner_text()
    p.wait_for_timeout(300)
    assert p.evaluate("typeof window.__pwned") == "undefined"


def test_entries_filter_as_you_type(page: Page) -> None:
    p = page
    p.goto("/entries")
    items = p.locator("#entry-list .entry-item:visible")
    total = items.count()
    p.fill("#filter-q", "relu")
    assert 0 < items.count() < total
    p.select_option("#filter-tag", "ethics")
    p.fill("#filter-q", "")
    assert "ai-bias-accountability" in p.locator(
        "#entry-list .entry-item:visible a.entry-link").first.get_attribute("href")


def test_works_on_a_phone_and_by_keyboard(browser: Browser,
                                          live_server: tuple[str, Services]) -> None:
    context = browser.new_context(base_url=live_server[0],
                                  viewport={"width": 375, "height": 740})
    p = context.new_page()
    try:
        for path in ("/", "/entries", "/entries/why-nonlinearities"):
            p.goto(path)
            assert p.evaluate("document.documentElement.scrollWidth") <= 375, path
        p.goto("/")
        p.keyboard.press("Tab")
        assert p.evaluate("document.activeElement.className") == "skip-link"
        p.focus("#question")
        p.keyboard.type("why relu")
        p.keyboard.press("Enter")
        p.locator(".msg-bot").wait_for()
    finally:
        context.close()


def test_a_new_reply_is_scrolled_into_sight_above_the_question_box(
        browser: Browser, live_server: tuple[str, Services]) -> None:
    """The question box stays at the bottom of the window: a reply must not end up under it."""
    context = browser.new_context(base_url=live_server[0],
                                  viewport={"width": 390, "height": 700})
    p = context.new_page()
    p.set_default_timeout(TIMEOUT_MS)
    try:
        ask(p, "What happens if I remove the activation functions?")
        p.locator(".msg-bot .answer-title a").wait_for()
        p.fill("#question", "Which pizza place near campus delivers the latest at night?")
        p.press("#question", "Enter")
        p.locator(".msg-bot .answer-card.unanswered").wait_for()
        # The start of the newest reply: inside the window and above the question box.
        p.wait_for_function("""() => {
            const reply = document.querySelector(".msg-bot:last-child .answer-card");
            const box = document.querySelector(".ask-form").getBoundingClientRect();
            const r = reply.getBoundingClientRect();
            return r.top >= 0 && r.top + 40 <= box.top;
        }""")
        question = p.locator(".msg-user").last.bounding_box()
        assert question is not None and question["y"] >= 0  # the question asked is in sight too
        p.goto("/")  # back on the page later: the last exchange is in sight, not the first
        p.locator(".msg-bot .answer-card.unanswered").wait_for()
        p.wait_for_function("""() => {
            const asked = [...document.querySelectorAll(".msg-user")].pop().getBoundingClientRect();
            const box = document.querySelector(".ask-form").getBoundingClientRect();
            return asked.top >= 0 && asked.bottom <= box.top;
        }""")
    except Exception:
        screenshot([p], "a_new_reply_is_scrolled_into_sight")
        raise
    finally:
        context.close()


def test_api_docs_render_with_nothing_from_outside(page: Page) -> None:
    p = page
    outside: list[str] = []

    def refuse(route: Route) -> None:
        outside.append(route.request.url)
        route.abort()

    p.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"), refuse)
    p.goto("/docs")
    chat = p.locator(".opblock-summary-path", has_text="/api/chat").first
    expect(chat).to_be_visible()
    assert p.locator(".opblock").count() >= 8
    assert outside == []


def test_unknown_url_and_staff_page_are_html_pages_in_a_browser(page: Page) -> None:
    response = page.goto("/no-such-page")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    expect(page).to_have_title(re.compile("Not found"))
    page.get_by_role("link", name="ask a question").click()
    expect(page.locator("#question")).to_be_visible()

    response = page.goto("/admin")
    assert response is not None and response.status == 401
    expect(page.locator("h1")).to_have_text("Staff login")
    expect(page.locator('input[name="next"]')).to_have_value("/admin")
    # the API under the same browser still answers in its JSON shape
    body = page.evaluate("fetch('/api/review').then(r => r.json())")
    assert body["error"]["code"] == "unauthorized"


def test_an_empty_question_says_so(page: Page) -> None:
    page.goto("/")
    page.fill("#question", "   ")
    page.press("#question", "Enter")
    problem = page.locator("#question-problem")
    expect(problem).to_have_text("Type a question first.")
    expect(page.locator("#question")).to_have_attribute("aria-invalid", "true")
    assert page.locator(".msg").count() == 0
    page.fill("#question", "why relu")  # typing clears the message
    expect(problem).to_be_hidden()


def test_an_overlong_paste_is_kept_whole_and_counted(page: Page) -> None:
    page.goto("/")
    page.fill("#question", "x" * 1200)
    assert len(page.input_value("#question")) == 1200  # not silently cut to 1000
    expect(page.locator("#char-count")).to_have_text("1200 / 1000")
    expect(page.locator("#question-problem")).to_contain_text("shorten it by 200")
    page.press("#question", "Enter")
    assert page.locator(".msg").count() == 0


def test_after_a_failure_the_question_stays_and_retry_sends_it(page: Page) -> None:
    failures = {"left": 1}

    def flaky(route: Route) -> None:
        if failures["left"]:
            failures["left"] -= 1
            route.fulfill(status=500, content_type="application/json",
                          body='{"error": {"code": "internal", "message": "Something broke."}}')
        else:
            route.continue_()

    page.route("**/api/chat", flaky)
    ask(page, "What happens if I remove the activation functions?")
    error = page.locator(".msg-bot .error-box")
    expect(error).to_contain_text("Something broke.")
    expect(page.locator("#question")).to_have_value(
        "What happens if I remove the activation functions?")
    error.get_by_role("button", name="Retry").click()
    expect(page.locator(".msg-bot .answer-title a")).to_have_text(
        "Why do we need ReLUs or other nonlinearities?")
    expect(page.locator(".error-box")).to_have_count(0)
    expect(page.locator(".msg-user")).to_have_count(1)
    expect(page.locator("#question")).to_have_value("")


def test_a_vote_can_be_changed(page: Page) -> None:
    sent: list[bool] = []
    page.on("request", lambda r: sent.append(r.post_data_json["helpful"])
            if r.url.endswith("/api/feedback") else None)
    ask(page, "What happens if I remove the activation functions?")
    helpful = page.get_by_role("button", name="Helpful", exact=True)
    not_helpful = page.get_by_role("button", name="Not helpful")
    helpful.click()
    expect(helpful).to_have_attribute("aria-pressed", "true")
    not_helpful.click()
    expect(not_helpful).to_have_attribute("aria-pressed", "true")
    expect(helpful).to_have_attribute("aria-pressed", "false")
    expect(page.locator(".feedback-status")).to_contain_text("sent to the TAs")
    assert sent == [True, False]


def test_a_run_waiting_for_a_free_runner_says_so(page: Page) -> None:
    body = ('retry: 1000\n\nevent: waiting\ndata: {"text": "Waiting for a free runner."}\n\n'
            'id: 1\nevent: stdout\ndata: {"text": "hello\\n"}\n\n'
            'id: 2\nevent: done\ndata: {"status": "ok", "exit_code": 0, "device": "cpu", '
            '"duration_ms": 12}\n\n')
    page.route("**/api/runs", lambda route: route.fulfill(
        status=202, content_type="application/json",
        body='{"id": "r1", "status": "queued", "events_url": "/api/runs/r1/events"}'))
    page.route("**/api/runs/r1/events", lambda route: route.fulfill(
        status=200, content_type="text/event-stream", body=body))
    page.goto("/entries/why-nonlinearities")
    page.evaluate("""() => {
        window.__states = [];
        const s = document.getElementById('demo-status');
        // each textContent write replaces the text node: the records keep every state
        new MutationObserver(records => records.forEach(r => r.addedNodes.forEach(
            n => window.__states.push(n.textContent)))).observe(s, {childList: true});
    }""")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#demo-status")).to_have_attribute("data-state", "done")
    states = page.evaluate("window.__states")
    assert any(s.startswith("Waiting for a free runner") for s in states), states
    assert states[-1].startswith("Done in 12 ms on CPU")


def test_the_page_reconnects_by_itself_and_shows_each_line_once(
        page: Page, live_server: tuple[str, Services]) -> None:
    urls: list[str] = []

    def events(route: Any) -> None:
        urls.append(route.request.url)
        if len(urls) > 1:  # the reconnection goes to the server, with Last-Event-ID
            route.continue_()
            return
        # the first connection drops after the first event of the real run
        text = route.fetch().text()
        first = next(block for block in text.split("\n\n") if block.startswith("id: 1\n"))
        route.fulfill(status=200, content_type="text/event-stream",
                      body="retry: 100\n\n" + first + "\n\n")

    page.route("**/api/runs/*/events", events)
    page.goto("/entries/why-nonlinearities")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#demo-status")).to_have_attribute("data-state", "done",
                                                           timeout=TIMEOUT_MS)
    assert len(urls) == 2, urls
    run_id = urls[0].rsplit("/", 2)[-2]
    run = page.request.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "ok" and run["stdout"].count("\n") >= 2
    shown = page.locator("#demo-stdout").inner_text()
    assert shown.strip() == run["stdout"].strip()  # every line, once


def test_the_cached_run_says_when_it_ran(page: Page) -> None:
    page.goto("/entries/why-nonlinearities")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#demo-status")).to_have_attribute("data-state", "done",
                                                           timeout=TIMEOUT_MS)
    page.reload()
    status = page.locator("#demo-status")
    expect(status).to_contain_text("Output of the last run, just now on CPU")
    assert re.search(r"\(it took \d+ ms\)", status.inner_text())


def test_the_demo_of_an_answer_runs_in_the_chat(page: Page) -> None:
    ask(page, "What happens if I remove the activation functions?")
    card = page.locator(".msg-bot .answer-card").last
    card.get_by_role("button", name="Run the demo").click()
    status = card.locator(".demo-status")
    expect(status).to_have_attribute("data-state", "done", timeout=TIMEOUT_MS)
    assert status.inner_text().startswith("Done in ")
    assert card.locator(".demo-stdout").inner_text().strip()
    assert card.locator(".demo-page-link").get_attribute("href") == \
        "/entries/why-nonlinearities#demo"


def test_moving_a_slider_changes_what_the_demo_prints(page: Page) -> None:
    p = page
    p.goto("/entries/mse-vs-outliers")
    expect(p.get_by_role("group", name="Try other values")).to_be_visible()
    slider = p.get_by_label("Points per sample (odd)")
    assert slider.get_attribute("type") == "range"
    slider.fill("11")  # a range input takes fill() as its value, and fires input
    expect(p.locator("#param-SAMPLE_SIZE-value")).to_have_text("11")
    p.get_by_role("button", name="Run").click()
    status = p.locator("#demo-status")
    expect(status).to_have_attribute("data-state", "done", timeout=TIMEOUT_MS)
    assert "samples of 11 points each" in p.locator("#demo-stdout").inner_text()
    p.get_by_role("button", name="Back to the demo's values").click()
    expect(p.locator("#param-SAMPLE_SIZE-value")).to_have_text("25")
    p.get_by_role("button", name="Run").click()
    expect(status).to_have_attribute("data-state", "done", timeout=TIMEOUT_MS)
    assert "samples of 25 points each" in p.locator("#demo-stdout").inner_text()


def test_edit_the_code_run_it_and_compare_with_the_original(page: Page) -> None:
    p = page
    p.goto("/entries/mse-vs-outliers")
    p.get_by_role("button", name="Edit the code").click()
    editor = p.get_by_role("textbox", name="Code of your version")
    expect(editor).to_be_visible()
    assert "Why use MSE" in editor.inner_text()
    editor.click()
    p.keyboard.press("Control+a")
    p.keyboard.press("Delete")
    p.keyboard.insert_text("print('hello from my version', 6 * 7)\n")
    panel = p.locator("#demo-edit")
    panel.get_by_role("button", name="Run my version").click()
    status = panel.locator(".demo-status")
    expect(status).to_have_attribute("data-state", "done", timeout=TIMEOUT_MS)
    expect(panel.locator(".demo-stdout")).to_contain_text("hello from my version 42")
    expect(p.locator("#demo-stdout")).not_to_contain_text("hello from my version")
    panel.get_by_label("Ask a TA about this run").fill("why only one line?")
    panel.get_by_role("button", name="Send my question, code and output").click()
    expect(panel.locator(".ask-status")).to_contain_text("Sent: a TA will see your question")
    panel.get_by_role("button", name="Show my changes").click()
    expect(p.locator("#edit-diff")).to_contain_text("hello from my version")
    expect(p.locator("#edit-diff .cm-deletedChunk").first).to_be_visible()
    panel.get_by_role("button", name="Back to the original code").click()
    assert "Why use MSE" in editor.inner_text()
    # a fork bomb typed into the editor is stopped, and the page says so; the chat answers
    editor.click()
    p.keyboard.press("Control+a")
    p.keyboard.press("Delete")
    p.keyboard.insert_text("import os\nwhile True:\n    os.fork()\n")
    panel.get_by_role("button", name="Run my version").click()
    expect(status).to_have_attribute("data-state", re.compile("error|timeout"),
                                     timeout=TIMEOUT_MS)
    assert "Stopped by the sandbox" in status.inner_text() and "limit" in status.inner_text(), \
        status.inner_text()
    reply = p.request.post("/api/chat", data={"message": "why do we need relu"})
    assert reply.status == 200 and reply.json()["answered"]
