"""The database as portable JSON rows, table by table, and back: for `askta backup` and
`askta restore`, across SQLite and PostgreSQL alike.

Rows are read through the models' tables (server/store/models.py), so every value is
what SQLAlchemy hands the application: a timezone-aware datetime becomes ISO 8601, bytes
become base64, JSON columns stay JSON; loading turns them back by the column's type. A
dump records the schema revision it was taken at; loading into a database migrated to
that same revision, then upgrading, runs any data migration in between on the rows.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from itertools import islice
from typing import Any

import sqlalchemy as sa
from sqlalchemy import DateTime, LargeBinary, Table, func, inspect, select, text
from sqlalchemy.engine import Connection

from server.store.base import StoreBase, alembic_config
from server.store.models import Base

BATCH_ROWS = 1000


class DumpError(Exception):
    """A dump cannot be loaded by this version of askta (a schema it does not know)."""


class DatabaseNotEmpty(DumpError):
    """The database to load into already has askta rows, or another schema."""


def tables() -> list[Table]:
    """Every askta table, parents before children (the order to load them in)."""
    return list(Base.metadata.sorted_tables)


def known_revisions() -> list[str]:
    """The schema revisions this version of askta knows, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def schema_revision(conn: Connection) -> str | None:
    """The revision the database is at; None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def snapshot(store: StoreBase) -> Iterator[Connection]:
    """One read transaction that sees one consistent state of every table (SQLite: a WAL
    read snapshot; PostgreSQL: REPEATABLE READ), while the server goes on writing."""
    with store.engine.connect() as conn:
        if not store.is_sqlite:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def present_columns(conn: Connection) -> dict[str, list[str]]:
    """For each askta table in the database, its columns that the models know."""
    inspector = inspect(conn)
    existing = set(inspector.get_table_names())
    out: dict[str, list[str]] = {}
    for table in tables():
        if table.name in existing:
            names = {c["name"] for c in inspector.get_columns(table.name)}
            out[table.name] = [c.name for c in table.columns if c.name in names]
    return out


def row_counts(conn: Connection) -> dict[str, int]:
    """Rows per askta table that exists in the database."""
    by_name = {t.name: t for t in tables()}
    return {name: int(conn.execute(select(func.count()).select_from(by_name[name])).scalar_one())
            for name in present_columns(conn)}


def dump_rows(conn: Connection, table_name: str, columns: list[str]) -> Iterator[dict[str, Any]]:
    """The table's rows in primary-key order, as JSON-ready dicts of `columns`."""
    table = Base.metadata.tables[table_name]
    cols = [table.c[name] for name in columns]
    result = conn.execute(select(*cols).order_by(*table.primary_key.columns))
    for row in result:
        yield {c.name: _encode(c.type, value) for c, value in zip(cols, row, strict=True)}


def check_loadable(conn: Connection, revision: str | None) -> None:
    """DumpError unless rows taken at `revision` can be loaded into this database: a
    revision this askta knows, and no askta rows here yet."""
    known = known_revisions()
    if revision not in known:
        raise DumpError(f"the backup's database schema is revision {revision!r}, which this "
                        f"version of askta does not know (it knows {', '.join(known)}): "
                        "restore it with the askta version that made it, or a newer one")
    busy = {name: n for name, n in row_counts(conn).items() if n}
    if busy:
        listed = ", ".join(f"{name} ({n} rows)" for name, n in sorted(busy.items()))
        raise DatabaseNotEmpty(f"the database is not empty: {listed}; restore into a new, "
                               "empty database")
    current = schema_revision(conn)
    if current is not None and current != revision:
        raise DatabaseNotEmpty(f"the database is already at schema revision {current} and "
                               f"the backup at {revision}: restore into a new, empty "
                               "database")


def load(store: StoreBase, revision: str,
         rows_of: Iterable[tuple[str, list[str], Iterable[dict[str, Any]]]]) -> dict[str, int]:
    """Migrate an empty database to `revision`, insert the dumped rows (table by table, in
    one transaction), then upgrade it to the newest schema. Returns rows per table."""
    with store.engine.connect() as conn:
        check_loadable(conn, revision)
    store.migrate(revision)
    counts: dict[str, int] = {}
    with store.engine.begin() as conn:
        present = present_columns(conn)
        for table_name, columns, rows in rows_of:
            if table_name not in Base.metadata.tables:
                raise DumpError(f"the backup has a table {table_name!r} that this version "
                                "of askta does not know")
            unknown = set(columns) - set(present.get(table_name, []))
            if unknown:
                raise DumpError(f"the backup's table {table_name} has columns "
                                f"{', '.join(sorted(unknown))} that schema {revision} lacks")
            model = Base.metadata.tables[table_name]
            cols = [model.c[name] for name in columns]
            # Only the dumped columns, typed as the models type them, and no defaults: the
            # model's Python-side defaults may name columns this revision does not have yet.
            target = sa.table(table_name, *(sa.column(c.name, c.type) for c in cols))
            counts[table_name] = 0
            it = iter(rows)
            while batch := [{c.name: _decode(c.type, row.get(c.name)) for c in cols}
                            for row in islice(it, BATCH_ROWS)]:
                conn.execute(target.insert(), batch)
                counts[table_name] += len(batch)
        if conn.dialect.name == "postgresql":
            _reset_sequences(conn)
    store.migrate("head")
    return counts


def _reset_sequences(conn: Connection) -> None:
    """Rows came with their ids: move each serial's sequence past the largest one, so the
    next row the server adds gets a new id."""
    for table in tables():
        for col in table.primary_key.columns:
            if col.autoincrement is True or (col.autoincrement == "auto"
                                             and col.type.python_type is int):
                conn.execute(text(
                    "SELECT setval(pg_get_serial_sequence(:t, :c), "
                    f'COALESCE((SELECT MAX("{col.name}") FROM "{table.name}"), 0) + 1, false)'),
                    {"t": table.name, "c": col.name})


def _encode(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, LargeBinary) or isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _decode(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, LargeBinary):
        return base64.b64decode(value)
    if isinstance(kind, DateTime) or isinstance(getattr(kind, "impl", None), DateTime):
        return datetime.fromisoformat(value)
    return value
