"""The HTML pages: chat, the list of entries, one entry with its demo; escaping and assets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.config import Settings
from server.services import Services
from server.web.app import create_app

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "server" / "web" / "static"
TEMPLATES = REPO / "server" / "web" / "templates"
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5E"
       "rkJggg==")
HOSTILE = '<script>window.__pwned = 1</script>'
HOSTILE_ENTRY = f"""\
id: hostile-entry
question: "What does {HOSTILE} do?"
alternate_questions:
  - a hostile question about scripts
answer: |
  Text {HOSTILE} and <img src=x onerror="window.__pwned = 2"> and [a link](javascript:alert(1)).
tags: [security]
demo: demos/hostile.py
status: published
"""


@pytest.fixture
def kb_dir(kb_dir: Path) -> Path:
    """The bundled KB plus one entry full of markup that must never run."""
    (kb_dir / "hostile-entry.yaml").write_text(HOSTILE_ENTRY)
    (kb_dir.parent / "demos" / "hostile.py").write_text(f'print("{HOSTILE}")\n')
    return kb_dir


class GpuRunner:
    cuda_available = True

    def close(self) -> None:
        pass


def test_chat_page(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert '<label for="question"' in html and 'data-max-chars="1000"' in html
    assert 'aria-live="polite"' in html and 'href="#main"' in html
    assert 'class="chip example"' in html
    assert "/static/js/chat.js" in html and "/static/vendor/katex/katex.min.js" in html


def test_pages_forbid_inline_script(client: TestClient) -> None:
    for path in ("/", "/entries", "/entries/why-nonlinearities"):
        csp = client.get(path).headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'"
        assert "default-src 'self'" in csp


def test_entries_page_lists_published_entries(client: TestClient, services: Services) -> None:
    html = client.get("/entries").text
    for entry in services.kb.published():
        assert f'href="/entries/{entry.id}"' in html
    assert "/entries/sgd-limitations" not in html
    assert '<label for="filter-q">' in html and '<label for="filter-tag">' in html
    assert '<option value="activations"' in html


def test_entries_filter_without_javascript(client: TestClient) -> None:
    html = client.get("/entries", params={"tag": "ethics"}).text
    visible = re.findall(r'<li class="entry-item"[^>]*?(hidden)?>\s*<a class="entry-link" '
                         r'href="/entries/([a-z0-9-]+)"', html)
    shown = {entry_id for hidden, entry_id in visible if not hidden}
    assert "ai-bias-accountability" in shown and "why-nonlinearities" not in shown
    html = client.get("/entries", params={"q": "relu nonlinearities"}).text
    assert re.search(r'<li class="entry-item"[^>]*[^n]>\s*<a class="entry-link" '
                     r'href="/entries/why-nonlinearities"', html)


def test_entry_page(client: TestClient) -> None:
    html = client.get("/entries/why-nonlinearities").text
    assert "<h1 id=\"entry-title\">Why do we need ReLUs or other nonlinearities?</h1>" in html
    assert 'class="math math-inline"' in html
    assert 'id="demo"' in html and 'data-entry-id="why-nonlinearities"' in html
    assert '<details class="demo-code">' in html and '<span class="n">torch</span>' in html


def test_entry_page_without_sandbox_says_why(client: TestClient) -> None:
    html = client.get("/entries/why-nonlinearities").text
    assert 'id="run-button"' not in html
    assert 'id="demo-disabled"' in html and "disabled" in html


def test_entry_page_shows_the_cached_output_at_once(client: TestClient,
                                                    services: Services) -> None:
    entry = services.kb.get("why-nonlinearities")
    path = services.kb.demo_path(entry)
    assert path is not None
    cache = services.demo_cache
    cache.put(cache.code_hash(path) or "", "cpu", {
        "status": "ok", "exit_code": 0, "stdout": "W = B @ A\n<b>not bold</b>\n", "stderr": "",
        "images": [{"mime": "image/png", "data_base64": PNG},
                   {"mime": "text/html", "data_base64": "PHNjcmlwdD4="},
                   {"mime": "image/png", "data_base64": '" onerror="alert(1)'}],
        "device": "cpu", "duration_ms": 35})
    html = client.get("/entries/why-nonlinearities").text
    assert "W = B @ A\n&lt;b&gt;not bold&lt;/b&gt;" in html
    assert "Output of the last run, <time datetime=" in html
    assert "just now</time> on CPU (it took 35 ms)" in html
    assert "ok," not in html  # no raw status word
    assert html.count('<img src="data:') == 1 and f'src="data:image/png;base64,{PNG}"' in html


@pytest.fixture
def gpu_client(settings: Settings, services: Services) -> Iterator[TestClient]:
    services.sandbox = GpuRunner()  # type: ignore[assignment]
    with TestClient(create_app(settings, services=services)) as c:
        yield c


def test_device_selector_with_a_gpu(gpu_client: TestClient) -> None:
    gpu = gpu_client.get("/entries/why-nonlinearities").text
    assert '<label for="device">Device</label>' in gpu and '<option value="cuda">' in gpu
    assert 'id="run-button"' in gpu


def test_no_device_selector_without_a_gpu(settings: Settings, services: Services) -> None:
    services.sandbox = GpuRunner()  # type: ignore[assignment]
    services.sandbox.cuda_available = False  # type: ignore[misc]
    with TestClient(create_app(settings, services=services)) as c:
        html = c.get("/entries/why-nonlinearities").text
    assert 'id="run-button"' in html and 'id="device"' not in html


def test_markup_in_an_entry_is_escaped_everywhere(client: TestClient) -> None:
    for path in ("/entries", "/entries/hostile-entry", "/entries?q=hostile"):
        html = client.get(path).text
        assert "<script>window.__pwned" not in html, path
        assert not re.search(r"<[a-z]+[^>]*\son\w+=", html), path
        assert 'href="javascript:' not in html, path
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in client.get(
        "/entries/hostile-entry").text


def test_markup_in_the_query_is_escaped(client: TestClient) -> None:
    html = client.get("/entries", params={"q": '"><script>alert(1)</script>'}).text
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


def test_unknown_entry_page_is_a_404_page(client: TestClient) -> None:
    r = client.get("/entries/no-such-entry")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "no-such-entry" in r.text and 'href="/entries"' in r.text
    assert client.get("/entries/sgd-limitations").status_code == 404


@pytest.mark.parametrize("path", [
    "/static/css/app.css", "/static/css/pygments.css", "/static/js/common.js",
    "/static/js/chat.js", "/static/js/entries.js", "/static/js/entry.js",
    "/static/vendor/katex/katex.min.js", "/static/vendor/katex/katex.min.css",
    "/static/favicon.svg", "/static/manifest.webmanifest",
])
def test_static_assets_are_served(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


def test_katex_fonts_are_vendored() -> None:
    css = (STATIC / "vendor/katex/katex.min.css").read_text()
    fonts = set(re.findall(r"url\((fonts/[^)]+\.woff2)\)", css))
    assert len(fonts) >= 15
    assert all((STATIC / "vendor/katex" / f).is_file() for f in fonts)


def test_nothing_is_loaded_from_another_site() -> None:
    external = re.compile(r"""(src|href)=["']?(https?:)?//""", re.IGNORECASE)
    for path in [*TEMPLATES.rglob("*.html"), *STATIC.glob("js/*.js"), *STATIC.glob("css/*.css")]:
        assert not external.search(path.read_text()), path
    assert "@import" not in (STATIC / "css/app.css").read_text()


def test_templates_build_no_html_from_strings() -> None:
    # the only markup marked safe is the sanitized Markdown and the highlighted demo code
    pages = ["base.html", "chat.html", "entries.html", "entry.html", "404.html",
             "partials/demo_output.html"]
    for path in (TEMPLATES / name for name in pages):
        for use in re.findall(r"\{\{([^}]*)\|\s*safe", path.read_text()):
            assert use.strip() in ("entry.answer_html", "demo_code"), (path, use)


def test_api_docs_come_from_this_server(client: TestClient) -> None:
    """/docs is Swagger UI from the files of a Python package: no CDN, nothing from outside."""
    r = client.get("/docs")
    assert r.status_code == 200 and "swagger-ui" in r.text
    assert "//" not in "".join(re.findall(r"""(?:src|href)=["']([^"']+)""", r.text))
    assets = re.findall(r"""(?:src|href)=["'](/docs/assets/[^"']+)""", r.text)
    assert {a.rsplit("/", 1)[1] for a in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for asset in assets:
        got = client.get(asset)
        assert got.status_code == 200 and len(got.content) > 500, asset
    assert client.get("/openapi.json").json()["paths"]["/api/chat"]["post"]
    assert client.get("/docs/oauth2-redirect").status_code == 200
    gone = client.get("/redoc")  # FastAPI's ReDoc page would load its script from a CDN
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def test_pages_link_an_icon_and_a_manifest_and_staff_links_only_for_staff(
        client: TestClient) -> None:
    html = client.get("/").text
    assert '<link rel="icon" href="/static/favicon.svg"' in html
    assert '<link rel="manifest" href="/static/manifest.webmanifest">' in html
    assert 'href="/admin"' not in html and 'href="/login">log in</a>' in html


def test_an_unknown_tag_is_shown_as_chosen_not_as_all_tags(client: TestClient) -> None:
    html = client.get("/entries?tag=unknown").text
    assert '<option value="unknown" selected>unknown (no answers)</option>' in html
    assert '<option value="" selected' not in html


def test_ago_reads_like_a_person() -> None:
    from datetime import UTC, datetime

    from server.web.templating import ago

    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert ago("2026-12-01T11:59:30Z", now) == "just now"
    assert ago("2026-12-01T11:55:00Z", now) == "5 minutes ago"
    assert ago("2026-12-01T11:00:00Z", now) == "1 hour ago"
    assert ago("2026-11-28T12:00:00Z", now) == "3 days ago"
    assert ago("garbage", now) == ""
