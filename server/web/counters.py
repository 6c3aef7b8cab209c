"""Where rate-limit and login-attempt counters live: a `limits` storage.

In memory for one web process (the default); in Redis (ASKTA_REDIS_URL) when several
processes, on one machine or several, must count one client's requests together.
`limits` is the rate-limiting library Flask-Limiter and SlowAPI are built on; its
Redis storage keeps moving windows as sorted sets with atomic Lua scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from limits.storage import MemoryStorage, Storage, storage_from_string
from starlette.concurrency import run_in_threadpool

from server.config import Settings

T = TypeVar("T")

TIMEOUT_S = 2.0  # a Redis that does not answer must not hold a request for long


def counter_storage(settings: Settings) -> Storage:
    """Redis when ASKTA_REDIS_URL is set, else this process's memory."""
    if settings.redis_url:
        storage = storage_from_string(settings.redis_url, socket_timeout=TIMEOUT_S,
                                      socket_connect_timeout=TIMEOUT_S)
        assert isinstance(storage, Storage)  # a redis:// URL gives the synchronous storage
        return storage
    return MemoryStorage()


def shared(storage: Storage) -> bool:
    """Whether other processes see these counters."""
    return not isinstance(storage, MemoryStorage)


async def counted(is_shared: bool, call: Callable[..., T], *args: Any) -> T:
    """A call on counters: on the event loop when they are in this process's memory,
    from a worker thread when each is a round trip to Redis (that must not hold the loop)."""
    if is_shared:
        return await run_in_threadpool(call, *args)
    return call(*args)
