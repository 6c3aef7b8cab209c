"""The Store's foundation: the engine, read and write sessions, migrations, closing.

SQLite by default (one file, WAL so readers never wait for the writer, a busy
timeout and BEGIN IMMEDIATE so concurrent writers queue instead of failing);
PostgreSQL by URL when several servers share one queue. Every read and write
first waits for the questions the chat path queued before it (see write_behind).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from server.store.write_behind import WriteBehind

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 15_000
MIGRATION_LOCK = 0x61736B7461  # "askta": the advisory lock migrations take on PostgreSQL


class StoreBase:
    """The engine and sessions every part of the Store reads and writes through."""

    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = _sqlite_engine(url)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(askta_write=True), expire_on_commit=False
        )
        self._behind = WriteBehind(self._write_queued)

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema (Alembic) to `revision`; creates the tables on a new database.

        On PostgreSQL, under an advisory lock held until the transaction ends: web
        processes starting together (`askta serve --workers N`, several machines) migrate
        one after another, and the later ones find the schema up to date."""
        from alembic import command

        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            command.upgrade(alembic_config(conn), revision)

    def close(self) -> None:
        """Write the questions still queued, then close every pooled connection."""
        self._behind.close()
        self.engine.dispose()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads, which sees every question logged before it."""
        self._behind.wait()
        with self._read() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session whose transaction commits at the end (or rolls back on error)."""
        self._behind.wait()
        with self._write() as session, session.begin():
            yield session

    def _write_queued(self, batch: list[Any]) -> None:
        """Write one batch of what `log_question` queued (the question log defines it)."""
        raise NotImplementedError


def _sqlite_engine(url: str) -> Engine:
    memory = url in ("sqlite://", "sqlite:///:memory:")
    if not memory:
        path = url.split("///", 1)[-1].split("?", 1)[0]
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        poolclass=StaticPool if memory else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below), so writes can take the lock up front.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that reads, then writes, can fail with "database is
        # locked" when another writer got there first; IMMEDIATE waits its turn instead.
        immediate = conn.get_execution_options().get("askta_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Any:
    """An Alembic Config built in code, so migrations run from an installed package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def json_safe(value: Any) -> Any:
    """JSON-safe copy for a JSON column (numpy floats and the like become plain Python)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Iterable):
        return [json_safe(v) for v in value]
    return str(value)
