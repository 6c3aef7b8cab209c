"""The Jinja2 templates (autoescaping on) and the security headers every page carries."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

PACKAGE_DIR = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=PACKAGE_DIR / "templates")

# Scripts only from our own origin: even if sanitizing ever missed something,
# an injected inline <script> or event handler would not run.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin"}
# Staff pages show private data: never cached.
STAFF_HEADERS = {**PAGE_HEADERS, "Cache-Control": "no-store"}
