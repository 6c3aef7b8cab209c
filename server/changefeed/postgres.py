"""The change feed over PostgreSQL LISTEN/NOTIFY, for web processes that share a
PostgreSQL database and no Redis."""

from __future__ import annotations

import psycopg

from server.changefeed.base import POLL_S, ChangeFeed, KbChange

CHANNEL = "askta_kb_changes"
CONNECT_TIMEOUT_S = 5


def libpq_url(sqlalchemy_url: str) -> str:
    """'postgresql+psycopg://u@h/db' -> 'postgresql://u@h/db' (what psycopg connects to)."""
    scheme, rest = sqlalchemy_url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


class PostgresChangeFeed(ChangeFeed):
    """NOTIFY each change on one channel; a thread LISTENs on its own connection."""

    backend = "postgresql"

    def __init__(self, database_url: str, channel: str = CHANNEL):
        super().__init__()
        self.url, self.channel = libpq_url(database_url), channel
        self._sender: psycopg.Connection | None = None

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)

    def _send(self, change: KbChange) -> None:
        try:
            if self._sender is None or self._sender.closed:
                self._sender = self._connect()
            self._sender.execute("SELECT pg_notify(%s, %s)", (self.channel, change.to_json()))
        except psycopg.Error:
            if self._sender is not None:
                self._sender.close()
            self._sender = None
            raise

    def _listen(self) -> None:
        with self._connect() as conn:
            conn.execute(f"LISTEN {self.channel}")
            self._subscribed()
            while not self.stopping:
                got = False
                for notify in conn.notifies(timeout=POLL_S, stop_after=1):
                    self._received(notify.payload)
                    got = True
                if not got:
                    self._idle()

    def _disconnect(self) -> None:
        if self._sender is not None:
            self._sender.close()
