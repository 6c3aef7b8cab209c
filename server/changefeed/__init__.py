"""The KB change feed: a change to kb/ made through one web process reaches every other.

Each web process keeps its own copy of the entries and its own search index in memory.
When a staff action writes kb/ (a TA's link, an instructor's save or delete), the
process that wrote the file publishes `KbChange(entry_id)`; every other process
re-reads that one file from kb/ and updates its own index (`follower.KbFollower`),
typically within milliseconds. The message carries no entry: kb/ is the one truth,
shared by every process (one folder on one machine; a shared volume across machines).

Backends (`open_change_feed`): Redis pub/sub when ASKTA_REDIS_URL is set, else
PostgreSQL LISTEN/NOTIFY when the database is PostgreSQL, else none (one process).
"""

from server.changefeed.base import ChangeFeed, KbChange
from server.changefeed.factory import open_change_feed
from server.changefeed.follower import KbFollower

__all__ = ["ChangeFeed", "KbChange", "KbFollower", "open_change_feed"]
