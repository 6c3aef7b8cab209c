"""Liveness and what the server has loaded."""

from __future__ import annotations

from fastapi import APIRouter

from server.web.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(services: ServicesDep) -> dict:
    """Status, number of published entries and the index manifest."""
    index = services.searcher.index
    return {
        "status": "ok",
        "entries": len(services.kb.published()),
        "index": {
            "model": index.model,
            "dimension": index.dimension,
            "vectors": len(index),
            "kb_hash": index.kb_hash,
        },
        "sandbox": {
            "available": services.sandbox is not None,
            "reason": services.sandbox_error,
            "cuda": bool(services.sandbox and services.sandbox.cuda_available),
        },
    }
