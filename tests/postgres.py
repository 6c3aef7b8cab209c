"""A fresh PostgreSQL database per test, on the server `.ci/postgres.sh` started
(ASKTA_TEST_POSTGRES_URL); tests that need one run only where that is set, as in CI."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

POSTGRES_URL = os.environ.get("ASKTA_TEST_POSTGRES_URL", "")


@contextmanager
def fresh_postgres_url() -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    name = f"askta_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = POSTGRES_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
