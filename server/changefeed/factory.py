"""Which change feed a server uses, from its settings."""

from __future__ import annotations

from server.changefeed.base import ChangeFeed
from server.config import Settings


def open_change_feed(settings: Settings) -> ChangeFeed:
    """Redis pub/sub when ASKTA_REDIS_URL is set; else PostgreSQL LISTEN/NOTIFY when the
    database is PostgreSQL; else none (one web process, nothing to tell)."""
    if settings.redis_url:
        from server.changefeed.redis import RedisChangeFeed

        return RedisChangeFeed(settings.redis_url)
    if settings.db_url.startswith("postgresql"):
        from server.changefeed.postgres import PostgresChangeFeed

        return PostgresChangeFeed(settings.db_url)
    return ChangeFeed()
