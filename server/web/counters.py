"""Where rate-limit and login-attempt counters live: a `limits` storage.

In memory for one web process (the default); in Redis (ASKTA_REDIS_URL) when several
processes, on one machine or several, must count one client's requests together.
`limits` is the rate-limiting library Flask-Limiter and SlowAPI are built on; its
Redis storage keeps moving windows as sorted sets with atomic Lua scripts.
"""

from __future__ import annotations

from limits.storage import MemoryStorage, Storage, storage_from_string

from server.config import Settings

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
