"""The review loop in a real browser: a TA links a queued question, an instructor authors.

Headless Debian Chromium driven by Playwright, against a live uvicorn server on a
free loopback port with the real embedding model. A failing test leaves a
screenshot in test-artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from indexer.embedders import SentenceTransformerEmbedder
from server.accounts import Accounts
from server.services import Services
from tests.live import TIMEOUT_MS, live_settings, screenshot, serve

pytestmark = [pytest.mark.slow, pytest.mark.browser]

STUDENT_QUESTION = "does leaky relu fix dying neurons in my model"
NEW_QUESTION = "How do transformers use attention to weigh tokens?"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory,
                real_embedder: SentenceTransformerEmbedder) -> Iterator[tuple[str, Services]]:
    """The app with the real model, a TA and an instructor account."""
    root = tmp_path_factory.mktemp("review-live")
    settings = live_settings(root, sandbox_enabled=False)
    services = Services.start(settings, embedder=real_embedder)
    accounts = Accounts(services.store)
    accounts.add("tara", "ta", "tara-password")
    accounts.add("ian", "instructor", "ian-password")
    with serve(settings, services) as url:
        yield url, services


@pytest.fixture
def contexts(browser: Browser, live_server: tuple[str, Services],
             request: pytest.FixtureRequest) -> Iterator[list[BrowserContext]]:
    """Fresh browser profiles (staff and student do not share cookies); screenshots on failure."""
    made: list[BrowserContext] = []
    errors: list[str] = []

    def new() -> BrowserContext:
        ctx = browser.new_context(base_url=live_server[0])
        ctx.set_default_timeout(TIMEOUT_MS)
        ctx.on("weberror", lambda e: errors.append(str(e.error)))
        made.append(ctx)
        return ctx

    holder = [new(), new()]
    failed_before = request.session.testsfailed
    yield holder
    if request.session.testsfailed > failed_before:
        screenshot([pg for ctx in made for pg in ctx.pages], request.node.name)
    for ctx in made:
        ctx.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture(autouse=True)
def _expect_timeout() -> Iterator[None]:
    expect.set_options(timeout=TIMEOUT_MS)
    yield
    expect.set_options(timeout=5_000)


def log_in(page: Page, name: str, password: str, next_path: str) -> None:
    page.goto(next_path)
    expect(page.locator("h1")).to_have_text("Staff login")  # 401: the login form stands in
    page.fill("#login-name", name)
    page.fill("#login-password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_path}")


def student_asks(page: Page, question: str) -> None:
    page.goto("/")
    page.fill("#question", question)
    page.press("#question", "Enter")


def test_ta_links_a_queued_question_and_the_student_gets_that_entry(
        contexts: list[BrowserContext], live_server: tuple[str, Services]) -> None:
    _, services = live_server
    staff, student = contexts[0].new_page(), contexts[1].new_page()

    student_asks(student, STUDENT_QUESTION)
    expect(student.locator(".msg-bot").last).to_contain_text("TA")  # the honest "not yet"
    item = next(i for i in services.store.review_items() if i.text == STUDENT_QUESTION)

    log_in(staff, "tara", "tara-password", "/review")
    group = staff.locator(f'.review-group[data-review-id="{item.id}"]')
    expect(group.locator("h2")).to_have_text(STUDENT_QUESTION)
    expect(group.locator(".count")).to_have_text("1 student asked")
    group.locator(".link-entry").fill("why-nonlinearities")
    group.locator(".link-button").click()
    status = staff.locator("#review-status")
    expect(status).to_contain_text("Linked to why-nonlinearities")
    expect(group).to_have_count(0)
    # the keyboard goes on to the next group, or to the "queue is empty" note
    focused = staff.evaluate("document.activeElement.id || document.activeElement.tagName")
    assert focused == "review-empty" or focused.startswith("group-title-"), focused
    staff.wait_for_timeout(2000)
    expect(status).to_contain_text("Linked to why-nonlinearities")  # the message stays

    assert STUDENT_QUESTION in services.kb.get("why-nonlinearities").alternate_questions
    assert services.store.review_item(item.id).resolved_by == "tara"

    student_asks(student, STUDENT_QUESTION)
    title = student.locator(".msg-bot .answer-title a").last
    expect(title).to_have_text("Why do we need ReLUs or other nonlinearities?")


def test_instructor_creates_an_entry_that_is_answerable_at_once(
        contexts: list[BrowserContext], live_server: tuple[str, Services]) -> None:
    staff, student = contexts[0].new_page(), contexts[1].new_page()
    log_in(staff, "ian", "ian-password", "/admin")
    staff.click("text=New entry")
    staff.fill("#f-id", "transformer-attention")
    staff.fill("#f-question", NEW_QUESTION)
    staff.fill("#f-alternates", "what is self-attention\nhow does attention work")
    staff.fill("#f-answer", "Each token scores every other token, **softmax** turns the scores "
                            "into weights, and the output is the weighted sum of their values.")
    expect(staff.locator("#answer-preview strong")).to_have_text("softmax")  # live preview
    staff.fill("#f-tags", "transformers")
    staff.select_option("#f-status", "published")
    staff.click("#save-entry")
    staff.wait_for_url("**/admin/entries/transformer-attention?saved=1")
    expect(staff.locator(".saved-note")).to_contain_text("answered in the chat")

    student_asks(student, NEW_QUESTION)
    expect(student.locator(".msg-bot .answer-title a").last).to_have_text(NEW_QUESTION)


def test_validation_errors_show_next_to_the_field(contexts: list[BrowserContext]) -> None:
    staff = contexts[0].new_page()
    log_in(staff, "ian", "ian-password", "/admin/entries/new")
    staff.fill("#f-id", "Not An Id")
    staff.fill("#f-question", "A question that will not be saved?")
    staff.click("#save-entry")
    expect(staff.locator("#id-error")).to_contain_text("lowercase words joined by hyphens")
    expect(staff.locator("#f-id")).to_have_attribute("aria-invalid", "true")
    expect(staff.locator("#f-question")).to_have_value("A question that will not be saved?")


def test_ta_cannot_open_the_editor(contexts: list[BrowserContext]) -> None:
    staff = contexts[0].new_page()
    log_in(staff, "tara", "tara-password", "/review")
    response = staff.goto("/admin")
    assert response is not None and response.status == 403
    expect(staff.locator("h1")).to_have_text("Not allowed")
    staff.click("text=Log out")
    staff.wait_for_url("**/")
    assert staff.goto("/review").status == 401  # type: ignore[union-attr]


def test_seed_groups_say_nobody_asked_and_dismiss_moves_focus_on(
        contexts: list[BrowserContext], live_server: tuple[str, Services]) -> None:
    _, services = live_server
    staff, student = contexts[0].new_page(), contexts[1].new_page()
    for question in ("Which bus goes to the exam hall?", "Is the cafeteria open on Sunday?"):
        student_asks(student, question)
        expect(student.locator(".msg-bot").last).to_contain_text("TA")
    log_in(staff, "tara", "tara-password", "/review")
    seeds = [i for i in services.store.review_items("open") if i.reason == "seed"]
    assert seeds, "the bundled KB has entries waiting for an answer"
    seed_group = staff.locator(f'.review-group[data-review-id="{seeds[0].id}"]')
    expect(seed_group.locator(".count")).to_have_text("no student asked yet")
    groups = staff.locator(".review-group")
    first = groups.first
    expect(first).to_be_visible()
    before = groups.count()
    next_title = groups.nth(1).locator("h2").get_attribute("id")
    first.locator(".dismiss-reason").select_option("off-topic")
    first.locator(".dismiss-button").click()
    expect(staff.locator("#review-status")).to_contain_text("Dismissed")
    expect(groups).to_have_count(before - 1)
    assert staff.evaluate("document.activeElement.id") == next_title
    for score in staff.locator(".group-suggestions li span.muted").all_inner_texts():
        assert score.strip().endswith("% match") and int(score.split("%")[0]) <= 100


def test_an_invalid_id_is_reported_as_typed_and_server_errors_get_focus(
        contexts: list[BrowserContext]) -> None:
    staff = contexts[0].new_page()
    log_in(staff, "ian", "ian-password", "/admin/entries/new")
    staff.fill("#f-id", "Why ReLU")
    staff.focus("#f-question")  # leaving the field checks it, before any Save
    expect(staff.locator("#id-error")).to_contain_text("lowercase words joined by hyphens")
    staff.fill("#f-id", "why-nonlinearities")  # valid, but taken: only the server knows
    staff.fill("#f-question", "A question that collides?")
    staff.click("#save-entry")
    expect(staff.locator("#f-id")).to_have_attribute("aria-invalid", "true")
    assert staff.evaluate("document.activeElement.id") == "f-id"


def test_admin_fits_a_phone_and_shows_the_preview_before_save(
        browser: Browser, live_server: tuple[str, Services]) -> None:
    context = browser.new_context(base_url=live_server[0], viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        log_in(page, "ian", "ian-password", "/admin")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.goto("/admin/entries/new")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        preview = page.locator("#answer-preview").bounding_box()
        save = page.locator("#save-entry").bounding_box()
        assert preview is not None and save is not None and preview["y"] < save["y"]
    finally:
        context.close()
