"""Database failures: transient ones retried with backoff, every one reported in one clean line.

Transient means the same work can succeed if run again: the connection was dropped or terminated,
the server is (re)starting or refusing connections, a serialization failure or deadlock. Callers
retry whole transactions (each one replaces what it writes) and whole reads, so a retry never
writes anything twice. A failure no wait can fix (the database or role does not exist, the login
or the SSL settings are refused) fails at once. The message names the database and the operation,
never the password and never the SQL.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

T = TypeVar("T")
log = logging.getLogger("ntrader_pipeline.warehouse")

# SQLSTATEs: serialization failure, deadlock, admin/crash shutdown, server starting up; class 08
# is every connection exception.
TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03"}

# A failed login carries no SQLSTATE in psycopg 3 (the error is libpq's text), so the settings no
# wait can fix are told by libpq's words: a missing database or role, a refused login, bad SSL
# or connection options. "Connection refused", a name that does not resolve (a restarting
# container) and "starting up" are not among them.
PERMANENT_CONNECTION_ERRORS = re.compile(
    r'database ".*" does not exist|role ".*" does not exist|authentication failed|no pg_hba\.conf entry'
    r"|no password supplied|permission denied|invalid sslmode|SSL was required|does not support SSL"
    r"|certificate verify failed|invalid connection option|invalid integer value|invalid port",
    re.IGNORECASE,
)


class WarehouseError(RuntimeError):
    """A database operation failed: which database, which operation, and the server's reason."""


@dataclass(frozen=True)
class Retries:
    """How often a transient failure is retried, and the first wait (seconds, doubled each retry).

    Set by ``NTRADER_DB_RETRIES`` and ``NTRADER_DB_RETRY_BACKOFF`` (``Settings``); the defaults wait
    about 15 s in all, long enough for a database server to restart.
    """

    count: int = 5
    backoff: float = 0.5


DEFAULT_RETRIES = Retries()


def is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) or type(exc).__module__.split(".")[0] in {"psycopg", "sqlite3"}


def is_transient(exc: BaseException) -> bool:
    """Whether running the same transaction again may succeed (SQLAlchemy- or driver-raised)."""
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    if PERMANENT_CONNECTION_ERRORS.search(str(original)):
        return False
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    code = getattr(original, "sqlstate", None)
    if code:
        return code in TRANSIENT_SQLSTATES or code.startswith("08")
    if type(original).__module__ == "sqlite3":
        return "locked" in str(original)  # another writer held the file past the busy timeout
    driver_operational = type(original).__name__ == "OperationalError"  # psycopg: no session yet
    return isinstance(exc, OperationalError) or driver_operational


def database_name(url: str) -> str:
    """``postgresql database ntrader on db.example:5432`` or ``sqlite database /path/w.sqlite``: no password."""
    parsed = make_url(url)
    where = f" on {parsed.host}:{parsed.port or 5432}" if parsed.host else ""
    return f"{parsed.get_backend_name()} database {parsed.database}{where}"


def reason(exc: BaseException) -> str:
    """The driver's first line (``terminating connection due to administrator command``), no SQL."""
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    return lines[0] if lines else type(original).__name__


def with_retries(url: str, operation: str, work: Callable[[], T], retries: Retries = DEFAULT_RETRIES) -> T:
    """Run ``work`` (one whole transaction), again after a transient failure, with backoff.

    Any database error that is not retried, or still fails after the last attempt, becomes a
    ``WarehouseError`` naming the database and the operation; other exceptions pass unchanged.
    """
    attempts, backoff = 1 + retries.count, retries.backoff
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except Exception as exc:
            if not is_database_error(exc):
                raise
            if not is_transient(exc):
                raise WarehouseError(f"{operation} failed on {database_name(url)}: {reason(exc)}") from exc
            if attempt == attempts:
                raise WarehouseError(
                    f"{operation} failed on {database_name(url)} after {attempts} attempts: {reason(exc)}"
                ) from exc
            delay = backoff * 2 ** (attempt - 1)
            log.warning(
                "%s on %s: %s; retrying in %.1f s (attempt %d of %d)",
                operation,
                database_name(url),
                reason(exc),
                delay,
                attempt + 1,
                attempts,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")
