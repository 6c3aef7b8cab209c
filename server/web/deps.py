"""Dependencies for routes, as Annotated aliases so handlers read like sentences.

The dependencies are `async def` although they never await: FastAPI runs a plain
`def` dependency in its thread pool, one thread hand-off per dependency and
request, while these only read attributes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from indexer.kb import KnowledgeBase
from indexer.search import Searcher
from server.config import Settings
from server.services import Services
from server.web.clients import client_id


async def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_searcher(services: Annotated[Services, Depends(get_services)]) -> Searcher:
    return services.searcher


async def get_kb(services: Annotated[Services, Depends(get_services)]) -> KnowledgeBase:
    return services.kb


async def _client(request: Request) -> str:
    return client_id(request)


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SearcherDep = Annotated[Searcher, Depends(get_searcher)]
KBDep = Annotated[KnowledgeBase, Depends(get_kb)]
ClientDep = Annotated[str, Depends(_client)]
