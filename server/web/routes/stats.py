"""The numbers at /admin/stats and /api/admin/stats."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from server.review.stats import collect_stats
from server.web.auth import TAUser, require_page_user
from server.web.deps import ServicesDep
from server.web.errors import STAFF_ERRORS, error_responses
from server.web.staff_pages import staff_page

router = APIRouter(tags=["admin"])


@router.get("/api/admin/stats", responses=error_responses(*STAFF_ERRORS))
def stats_json(services: ServicesDep, user: TAUser) -> dict[str, Any]:
    """Questions per day, share answered, top unanswered groups, most-used entries, rates,
    and pairs of entries close enough to be confused."""
    return collect_stats(services.store, services.kb, services.review_queue, services.searcher)


@router.get("/admin/stats", response_class=HTMLResponse, include_in_schema=False)
async def stats_page(request: Request, services: ServicesDep) -> Response:
    """The numbers, with a chart of questions per day."""
    user = await require_page_user(request, "ta")
    stats = await run_in_threadpool(collect_stats, services.store, services.kb,
                                    services.review_queue, services.searcher)
    return staff_page(request, "stats.html", user, {"stats": stats, "chart": _chart(stats),
                                                    "nav": "stats", "title": "Statistics"})


def _chart(stats: dict[str, Any]) -> dict[str, Any]:
    """Bar geometry for the SVG chart of questions per day (answered stacked on asked)."""
    days = stats["per_day"]
    peak = max([d["asked"] for d in days] + [1])
    width, height, gap = 600, 160, 2
    bar = (width - gap * len(days)) / max(len(days), 1)
    bars = []
    for i, d in enumerate(days):
        h_all = height * d["asked"] / peak
        h_ok = height * d["answered"] / peak
        x = i * (bar + gap)
        bars.append({"x": round(x, 1), "w": round(bar, 1), "day": d["day"],
                     "asked": d["asked"], "answered": d["answered"],
                     "y_all": round(height - h_all, 1), "h_all": round(h_all, 1),
                     "y_ok": round(height - h_ok, 1), "h_ok": round(h_ok, 1)})
    return {"bars": bars, "width": width, "height": height, "peak": peak}
