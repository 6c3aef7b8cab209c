"""GET /metrics: the app's Prometheus metrics (server/web/metrics.py).

Open by default, like /healthz; with ASKTA_METRICS_TOKEN set, only a scraper that sends
`Authorization: Bearer <token>` gets them.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.web.deps import ServicesDep
from server.web.errors import Unauthorized

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"description": "The metrics in the Prometheus text format (OpenMetrics if the "
                             "Accept header asks for it).",
              "content": {"text/plain": {"schema": {"type": "string"}}}},
        401: {"description": "ASKTA_METRICS_TOKEN is set and the request did not send it."},
    },
)
def metrics(request: Request, services: ServicesDep) -> Response:
    """Request counts and latencies by route template, chat latency and outcomes, demo runs,
    the sandbox queue and warm pool, index vectors and open review items."""
    token = services.settings.metrics_token
    if token is not None and not _bearer_matches(request.headers.get("authorization"), token):
        raise Unauthorized("Send 'Authorization: Bearer <token>' with the metrics token "
                           "(ASKTA_METRICS_TOKEN).", headers={"WWW-Authenticate": "Bearer"})
    # A plain `def`: the open review items are counted in the database, off the event loop.
    body, content_type = services.metrics.exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})


def _bearer_matches(header: str | None, token: str) -> bool:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())
