"""Who is asking: the client id that rate limits and the question log use."""

from __future__ import annotations

from fastapi import Request

from server.config import Settings


def client_id(request: Request) -> str:
    """Who is asking, for rate limits and the question log: the peer address."""
    settings: Settings = request.app.state.settings
    if settings.trust_proxy_headers:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.client.host if request.client else "unknown"
