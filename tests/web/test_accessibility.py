"""axe-core (shipped by axe-playwright-python, run inside the page, no CDN) on every page
type, light and dark, desktop and phone: no serious or critical violation."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from indexer.embedders import SentenceTransformerEmbedder
from server.accounts import Accounts
from server.services import Services
from tests.live import TIMEOUT_MS, live_settings, screenshot, serve

pytestmark = [pytest.mark.slow, pytest.mark.browser]

VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
SCHEMES = ("light", "dark")
AXE = Axe()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory,
                real_embedder: SentenceTransformerEmbedder) -> Iterator[tuple[str, Services]]:
    root = tmp_path_factory.mktemp("a11y")
    settings = live_settings(root, sandbox_pool_size=1, sandbox_gpu_pool_size=1)
    services = Services.start(settings, embedder=real_embedder)
    Accounts(services.store).add("ian", "instructor", "ian-password")
    # A second version of one entry: its history page has a diff and a Revert button.
    fields = services.kb.get("mse-vs-outliers").to_yaml_dict()
    services.editor.save({**fields, "answer": fields["answer"] + "\nOne more line.\n"},
                         by="ian", entry_id="mse-vs-outliers")
    with serve(settings, services) as url:
        yield url, services


def log_in(page: Page, next_path: str) -> None:
    page.goto(f"/login?next={next_path}")
    page.fill("#login-name", "ian")
    page.fill("#login-password", "ian-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_path}")


def chat_answered(page: Page) -> None:
    page.goto("/")
    page.fill("#question", "What happens if I remove the activation functions?")
    page.press("#question", "Enter")
    page.locator(".msg-bot .answer-title a").wait_for()


def chat_not_yet(page: Page) -> None:
    page.goto("/")
    page.fill("#question", "Which pizza place near campus delivers the latest at night?")
    page.press("#question", "Enter")
    page.locator(".answer-card.unanswered").wait_for()


def entry_after_a_run(page: Page) -> None:
    page.goto("/entries/why-nonlinearities")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#demo-status")).to_have_attribute("data-state", "done",
                                                           timeout=TIMEOUT_MS)


def admin_conflict(page: Page) -> None:
    """The editor after Save found that someone else saved the entry meanwhile."""
    log_in(page, "/admin/entries/why-not-deeper")
    page.evaluate("""async () => {
      const csrf = document.querySelector('meta[name="csrf-token"]').content;
      const entry = await (await fetch('/api/admin/entries/why-not-deeper')).json();
      entry.answer += '\\nEdited meanwhile.';
      const r = await fetch('/api/entries/why-not-deeper', {method: 'PUT', body:
        JSON.stringify(entry), headers: {'Content-Type': 'application/json',
        'If-Match': entry.etag, 'X-CSRF-Token': csrf}});
      if (r.status !== 200) throw new Error('PUT answered ' + r.status);
    }""")
    page.fill("#f-answer", "My version of the answer.")
    page.click("#save-entry")
    page.locator("#conflict").wait_for()
    page.locator("#conflict summary").click()


PAGES: dict[str, Callable[[Page], None]] = {
    "chat with an answer": chat_answered,
    "chat with a not-yet reply": chat_not_yet,
    "entries list": lambda p: p.goto("/entries") and None,
    "entry page after a run": entry_after_a_run,
    "login": lambda p: p.goto("/login") and None,
    "not found": lambda p: p.goto("/no-such-page") and None,
    "review queue": lambda p: (log_in(p, "/review"),
                               p.locator(".review-group").first.wait_for()) and None,
    "admin list": lambda p: log_in(p, "/admin"),
    "admin editor": lambda p: log_in(p, "/admin/entries/why-nonlinearities"),
    "admin editor with a conflict": admin_conflict,
    "stats": lambda p: log_in(p, "/admin/stats"),
    "entry history": lambda p: log_in(p, "/admin/entries/mse-vs-outliers/history"),
}


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("name", list(PAGES))
def test_no_serious_violations(browser: Browser, live_server: tuple[str, Services],
                               name: str, viewport: str, request: pytest.FixtureRequest) -> None:
    context = browser.new_context(base_url=live_server[0], viewport=VIEWPORTS[viewport])
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        PAGES[name](page)
        found = []
        for scheme in SCHEMES:
            page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
            results = AXE.run(page)
            for v in results.response["violations"]:
                if v["impact"] in ("serious", "critical"):
                    targets = [n["target"] for n in v["nodes"]][:5]
                    found.append(f"{scheme}: {v['id']} ({v['impact']}): {v['help']} {targets}")
        if found:
            screenshot([page], request.node.name)
        assert found == [], "\n".join(found)
    finally:
        context.close()
