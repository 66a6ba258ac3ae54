"""Async SQLAlchemy for SQLite (embedded default) and PostgreSQL (production), chosen by URL.

SQLite notes: pysqlite's own transaction handling is switched off and ``BEGIN`` is emitted by us, so that
write transactions take the lock up front (``BEGIN IMMEDIATE``) instead of failing with "database is
locked" when a read transaction tries to upgrade; WAL lets readers proceed during a write. See
https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import aiosqlite
from sqlalchemy import BigInteger, DateTime, MetaData, Table, TypeDecorator, Uuid, event
from sqlalchemy import Enum as SAEnum
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from shared import jsonutil
from shared.pool import FairAsyncAdaptedQueuePool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 10_000


def state_enum(enum: type[StrEnum], length: int = 32) -> SAEnum:
    """A StrEnum stored as its value in a VARCHAR (no native enum type: migrations stay simple)."""
    return SAEnum(
        enum, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e], validate_strings=True
    )


# The largest value of an INTEGER column (32-bit on PostgreSQL): the upper bound of every request field stored
# in one (versions, offsets), so that a larger number is a 422, not a database error.
INTEGER_MAX = 2**31 - 1


def new_metadata() -> MetaData:
    """Each service has its own metadata: its own database, its own tables."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every backend: stored in UTC, always returned aware.

    SQLite has no timezone type and hands back naive values; PostgreSQL uses timestamptz.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: every *_at value must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


TYPE_ANNOTATION_MAP: dict[Any, Any] = {
    datetime: UTCDateTime(),
    uuid.UUID: Uuid(as_uuid=True),
    int: BigInteger(),
}


def table_of(model: type[Any]) -> Table:
    """A mapped model's table, typed as one (the declarative base declares ``__table__`` a ``FromClause``),
    for Core statements on the hot paths."""
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


def utcnow() -> datetime:
    return datetime.now(UTC)


def insert_for(session: AsyncSession) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(
    url: str, *, pool_size: int = 20, pool_timeout: float = 5.0, pool_pre_ping: bool = False, echo: bool = False
) -> AsyncEngine:
    """``pool_size``: the most connections this engine opens, all of them kept once opened (no overflow).
    Overflow connections are closed as soon as they are returned, so under load the pool kept opening and
    closing them: a new PostgreSQL backend per connection and every prepared statement prepared again. Measured
    in the launch rush (1,500 backers, 2 cores): 10 kept + 10 overflow gave ~80 accepted pledges/s, 20 kept
    ~118/s with the same upper bound.

    Waiters are served first come, first served (``shared.pool``).

    ``pool_timeout``: how long a request waits for a free connection before it is refused with a 503
    (shorter than the gateway's upstream timeout, so the caller gets an answer it can retry, not a 504).

    ``pool_pre_ping`` is off by default: on asyncpg it costs round trips on every checkout (measured at 14% of
    the pledges service's CPU in the launch rush). A connection that died (database restarted) fails its
    request with a 503 that can be retried, and the pool drops it and every older one (``invalidate``);
    ``pool_recycle`` replaces connections before servers or proxies time them out.

    JSON columns are written and read with orjson (``shared.jsonutil``): a Stripe event stored per webhook
    delivery, the accepted terms per pledge."""
    if is_sqlite(url):
        parsed = make_url(url)
        path = os.path.abspath(parsed.database) if parsed.database not in (None, "", ":memory:") else None
        file_db = {"async_creator": lambda: _sqlite_connect(path)} if path and not parsed.query else {}
        engine = create_async_engine(
            url,
            echo=echo,
            poolclass=FairAsyncAdaptedQueuePool,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=pool_timeout,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            json_serializer=jsonutil.dumps_text,
            json_deserializer=jsonutil.loads,
            **file_db,
        )
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        echo=echo,
        poolclass=FairAsyncAdaptedQueuePool,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        pool_pre_ping=pool_pre_ping,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "crowdfund"}, "command_timeout": 30},
        json_serializer=jsonutil.dumps_text,
        json_deserializer=jsonutil.loads,
    )


class _AiosqliteConnection(aiosqlite.Connection):
    """aiosqlite's connection, whose ``stop()`` may be called twice.

    When a task is cancelled during a statement, SQLAlchemy drops the connection: it starts a graceful close
    in a task of its own and, if the task is cancelled again meanwhile (``gather`` cancels a loop, then its
    owner cancels it once more), stops the connection's thread at once. The graceful close then calls
    ``stop()`` a second time and waits for a thread that has already exited: a task that never ends, so the
    event loop can never close (a service that hangs on shutdown, a test run stuck in teardown). Once
    stopping, ``stop()`` here has nothing left to wait for."""

    def stop(self) -> asyncio.Future[Any] | None:
        if not self._running:
            return None
        return super().stop()


async def _sqlite_connect(path: str) -> aiosqlite.Connection:
    """What ``aiosqlite.connect`` does (the thread a daemon, as SQLAlchemy makes it), with the class above."""
    connection = _AiosqliteConnection(
        lambda: sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, check_same_thread=False),
        iter_chunk_size=64,
    )
    connection._thread.daemon = True
    return await connection


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see module docstring)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def read_engine(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, for reads that must show one moment. On PostgreSQL a read transaction is REPEATABLE READ:
    all its statements see one snapshot (under READ COMMITTED each statement takes its own, so a pledge read
    before its refunds could show a refund succeeded next to a refunded amount that did not count it yet).
    SQLite read transactions begin DEFERRED, so they never wait for the write lock; a SQLite transaction
    is a snapshot already."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(sqlite_begin="DEFERRED")
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="REPEATABLE READ")
    return engine


class Session(AsyncSession):
    """An ``AsyncSession`` whose ``async with`` closes it in the calling task.

    SQLAlchemy's own exit runs ``close()`` in a task of its own behind ``asyncio.shield`` (so that a cancelled
    caller still returns the connection). That costs two or three trips through the event loop's ready queue
    on every exit, and the pool's connection is held for the first of them: measured during the launch rush,
    with the loop ~20 ms behind, a connection's release took 38 ms at the median (longer than the statement
    it served), and the pool of 20 ran dry (waits for a connection: p90 340 ms, p99 920 ms). Closed here
    inline, a close with nothing to roll back (after a commit, or autocommit) never yields, so it cannot be
    interrupted; one that must roll back and is cancelled meanwhile is invalidated by the pool (the
    connection is dropped, never leaked)."""

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        await self.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=Session, expire_on_commit=False, autoflush=False)


class Database:
    """The engine and session factories of one service (owned by its lifespan)."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 20,
        pool_timeout: float = 5.0,
        pool_pre_ping: bool = False,
        echo: bool = False,
    ) -> None:
        self.url = url
        self.engine = create_engine(
            url, pool_size=pool_size, pool_timeout=pool_timeout, pool_pre_ping=pool_pre_ping, echo=echo
        )
        self.write_sessions = create_sessionmaker(self.engine)
        self.read_sessions = create_sessionmaker(read_engine(self.engine))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def dispose(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def one_statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for a unit of work that is ONE statement. On PostgreSQL it runs in autocommit: the
        server commits the statement as it runs, without the BEGIN and COMMIT round trips of a transaction
        (3 round trips become 1; measured on the pledge path, BEGIN and COMMIT were ~15% of the service's CPU).
        Two statements here would be two transactions: a caller with more to write makes it one statement
        (a data-modifying CTE) on PostgreSQL. On SQLite it is a transaction (``BEGIN IMMEDIATE``) committed on
        exit, so the same caller may run its statements one by one there."""
        conn = await self.engine.connect()  # closed inline, not in a task of its own: see ``Session``
        try:
            if self.engine.dialect.name == "postgresql":
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                yield conn
            else:
                async with conn.begin():
                    yield conn
        finally:
            await conn.close()


# Errors that say "the database cannot serve this now" rather than "this request is wrong": the pool is
# exhausted, the server refuses connections or is restarting, a connection died, a lock wait or a
# serialization conflict gave up. A client may retry them; they are never a 500. Matched by class name so
# that neither driver has to be importable.
_TRANSIENT_DRIVER_ERRORS = frozenset(
    {
        "TooManyConnectionsError",  # asyncpg: max_connections reached
        "CannotConnectNowError",  # asyncpg: the server is starting or shutting down
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "InterfaceError",
        "AdminShutdownError",
        "CrashShutdownError",
        "SerializationError",
        "DeadlockDetectedError",
        "LockNotAvailableError",
        "QueryCanceledError",  # statement_timeout / lock_timeout
        "ConnectionRefusedError",
        "ConnectionResetError",
        "TimeoutError",
    }
)


def is_transient_db_error(exc: BaseException) -> bool:
    """True when a database error is about availability (retry later), not about the request."""
    if isinstance(exc, sa_exc.TimeoutError):  # QueuePool limit reached: every connection is busy
        return True
    if isinstance(exc, (ConnectionError, TimeoutError)):
        # asyncpg's connect raises the socket's own error, unwrapped: transient when it came through the pool.
        return _raised_through_sqlalchemy(exc)
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    cause: BaseException | None = exc.orig
    seen = 0
    while cause is not None and seen < 5:
        name = type(cause).__name__
        if name in _TRANSIENT_DRIVER_ERRORS or isinstance(cause, (ConnectionError, TimeoutError)):
            return True
        if name == "OperationalError" and "locked" in str(cause):  # SQLite: busy_timeout expired
            return True
        cause = cause.__cause__
        seen += 1
    return False


def _raised_through_sqlalchemy(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").startswith("sqlalchemy."):
            return True
        tb = tb.tb_next
    return False
