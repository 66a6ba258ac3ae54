"""SQLite persistence: every acknowledged change is committed before its response is sent.

One connection, used only from the event loop thread. Request handlers are synchronous, so a
unit of work never interleaves with another one. Every commit hands its pages to the operating
system before the response is sent, so a SIGKILL of the process loses nothing acknowledged.
``synchronous=OFF`` (the default) skips fsync: measured here it halves the cost of a commit, and
only an OS crash or power loss - not a concern for a test double - could lose recent commits;
``STRIPE_LOCAL_SQLITE_SYNCHRONOUS=normal|full`` buys that durability back.
Objects are cached in memory, write-through, so reads rarely touch SQLite.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    hidden INTEGER NOT NULL DEFAULT 0,
    customer TEXT,
    payment_intent TEXT,
    charge TEXT,
    payment_method TEXT,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_type ON objects(type, seq);
CREATE INDEX IF NOT EXISTS objects_customer ON objects(customer, type, seq) WHERE customer IS NOT NULL;
CREATE INDEX IF NOT EXISTS objects_intent ON objects(payment_intent, type, seq) WHERE payment_intent IS NOT NULL;
CREATE INDEX IF NOT EXISTS objects_charge ON objects(charge, type, seq) WHERE charge IS NOT NULL;
CREATE INDEX IF NOT EXISTS objects_pm ON objects(payment_method, type, seq) WHERE payment_method IS NOT NULL;

CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    created INTEGER NOT NULL,
    object_id TEXT,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_type ON events(type, seq);
CREATE INDEX IF NOT EXISTS events_object ON events(object_id, seq);

CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    params BLOB NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    request_id TEXT NOT NULL,
    created INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_event ON webhook_deliveries(event_id);

CREATE TABLE IF NOT EXISTS scheduled (
    id INTEGER PRIMARY KEY,
    due_at REAL NOT NULL,
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS scheduled_due ON scheduled(done, due_at);
"""

_UPSERT = (
    "INSERT INTO objects(id, type, hidden, customer, payment_intent, charge, payment_method, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET hidden=excluded.hidden, "
    "customer=excluded.customer, payment_intent=excluded.payment_intent, charge=excluded.charge, "
    "payment_method=excluded.payment_method, data=excluded.data"
)
FILTER_COLUMNS = ("customer", "payment_intent", "charge", "payment_method")


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _row_for(obj: dict[str, Any]) -> tuple[Any, ...]:
    hidden = 1 if obj.get("deleted") or obj.get("_local", {}).get("hidden") else 0
    return (
        obj["id"],
        obj["object"],
        hidden,
        _str_or_none(obj.get("customer")),
        _str_or_none(obj.get("payment_intent")),
        _str_or_none(obj.get("charge")),
        _str_or_none(obj.get("payment_method")),
        orjson.dumps(obj),
    )


class Database:
    def __init__(self, path: str, cache_limit: int = 100_000, synchronous: str = "off") -> None:
        if path != ":memory:":
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        if synchronous.lower() not in ("off", "normal", "full"):
            raise ValueError("synchronous must be off, normal or full")
        for pragma in (
            "journal_mode=WAL",
            f"synchronous={synchronous.upper()}",
            "temp_store=MEMORY",
            "cache_size=-65536",
            "busy_timeout=5000",
        ):
            self.conn.execute(f"PRAGMA {pragma}")
        self.conn.executescript(SCHEMA)
        self._cache: dict[str, dict[str, Any]] = {}
        self._cache_limit = cache_limit

    def close(self) -> None:
        self.conn.close()

    # -- objects --------------------------------------------------------------------------

    def get(self, obj_id: str) -> dict[str, Any] | None:
        obj = self._cache.get(obj_id)
        if obj is not None:
            return obj
        row = self.conn.execute("SELECT data FROM objects WHERE id = ?", (obj_id,)).fetchone()
        if row is None:
            return None
        obj = orjson.loads(row[0])
        self._remember(obj)
        return obj

    def _remember(self, obj: dict[str, Any]) -> None:
        if len(self._cache) >= self._cache_limit:
            for key in list(itertools.islice(self._cache, self._cache_limit // 10 + 1)):
                del self._cache[key]
        self._cache[obj["id"]] = obj

    def invalidate_cache(self) -> None:
        """Called after a failed unit of work: handlers mutate cached dicts in place."""
        self._cache.clear()

    def seq_of(self, obj_id: str, table: str = "objects") -> int | None:
        row = self.conn.execute(f"SELECT seq FROM {table} WHERE id = ?", (obj_id,)).fetchone()
        return None if row is None else int(row[0])

    def page_objects(
        self,
        obj_type: str,
        filters: dict[str, str],
        *,
        after_seq: int | None,
        before_seq: int | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Newest first. ``after_seq`` pages forward (``starting_after``), ``before_seq`` back."""
        sql = ["SELECT id, data FROM objects WHERE type = ? AND hidden = 0"]
        args: list[Any] = [obj_type]
        for column, value in filters.items():
            if column.startswith("$."):  # a JSON field, e.g. customers by "$.email"
                sql.append("AND json_extract(CAST(data AS TEXT), ?) = ?")
                args.extend([column, value])
                continue
            assert column in FILTER_COLUMNS
            sql.append(f"AND {column} = ?")
            args.append(value)
        if after_seq is not None:
            sql.append("AND seq < ?")
            args.append(after_seq)
        if before_seq is not None:
            sql.append("AND seq > ? ORDER BY seq ASC LIMIT ?")
            args.extend([before_seq, limit])
        else:
            sql.append("ORDER BY seq DESC LIMIT ?")
            args.append(limit)
        rows = self.conn.execute(" ".join(sql), args).fetchall()
        if before_seq is not None:
            rows.reverse()
        return [self._cache.get(row[0]) or orjson.loads(row[1]) for row in rows]

    def objects_where_json(self, obj_type: str, conditions: dict[str, str], limit: int) -> list[dict[str, Any]]:
        """Test-only inspection: match ``$.path = value`` conditions on the stored JSON."""
        sql = ["SELECT data FROM objects WHERE type = ?"]
        args: list[Any] = [obj_type]
        for path, value in conditions.items():
            if path[2:] in FILTER_COLUMNS:  # indexed columns first; JSON only for the rest
                sql.append(f"AND {path[2:]} = ?")
                args.append(value)
                continue
            sql.append("AND json_extract(CAST(data AS TEXT), ?) = ?")
            args.extend([path, value])
        sql.append("ORDER BY seq DESC LIMIT ?")
        args.append(limit)
        return [orjson.loads(row[0]) for row in self.conn.execute(" ".join(sql), args)]

    def search_objects(
        self, obj_type: str, conditions: list[tuple[str, str, Any]], *, after_seq: int | None, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """Search API support: ``(json path, "=" or "!=", value)`` conditions, newest first."""
        sql = ["SELECT seq, id, data FROM objects WHERE type = ? AND hidden = 0"]
        args: list[Any] = [obj_type]
        for path, op, value in conditions:
            assert op in ("=", "!=")
            sql.append(f"AND coalesce(json_extract(CAST(data AS TEXT), ?), '') {op} ?")
            args.extend([path, value])
        if after_seq is not None:
            sql.append("AND seq < ?")
            args.append(after_seq)
        sql.append("ORDER BY seq DESC LIMIT ?")
        args.append(limit)
        rows = self.conn.execute(" ".join(sql), args).fetchall()
        return [(int(r[0]), self._cache.get(r[1]) or orjson.loads(r[2])) for r in rows]

    def objects_by(self, obj_type: str, column: str, value: str) -> list[dict[str, Any]]:
        assert column in FILTER_COLUMNS
        rows = self.conn.execute(
            f"SELECT id, data FROM objects WHERE type = ? AND {column} = ? ORDER BY seq ASC",
            (obj_type, value),
        ).fetchall()
        return [self._cache.get(row[0]) or orjson.loads(row[1]) for row in rows]

    # -- events ---------------------------------------------------------------------------

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT data FROM events WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else orjson.loads(row[0])

    def event_payload(self, event_id: str) -> bytes | None:
        row = self.conn.execute("SELECT data FROM events WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def page_events(
        self,
        *,
        types: Sequence[str] | None,
        prefix: str | None,
        created: dict[str, int] | None,
        object_id: str | None,
        after_seq: int | None,
        before_seq: int | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        sql = ["SELECT data FROM events WHERE 1 = 1"]
        args: list[Any] = []
        if types:
            sql.append(f"AND type IN ({','.join('?' * len(types))})")
            args.extend(types)
        if prefix is not None:
            sql.append("AND type LIKE ?")
            args.append(prefix.replace("%", "") + "%")
        if object_id is not None:
            sql.append("AND object_id = ?")
            args.append(object_id)
        ops = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        for op, value in (created or {}).items():
            sql.append(f"AND created {ops[op]} ?")
            args.append(value)
        if after_seq is not None:
            sql.append("AND seq < ?")
            args.append(after_seq)
        if before_seq is not None:
            sql.append("AND seq > ? ORDER BY seq ASC LIMIT ?")
            args.extend([before_seq, limit])
        else:
            sql.append("ORDER BY seq DESC LIMIT ?")
            args.append(limit)
        rows = [orjson.loads(r[0]) for r in self.conn.execute(" ".join(sql), args)]
        if before_seq is not None:
            rows.reverse()
        return rows

    def set_event_pending_webhooks(self, event_id: str, delta: int) -> None:
        event = self.get_event(event_id)
        if event is None:
            return
        event["pending_webhooks"] = max(0, event["pending_webhooks"] + delta)
        self.conn.execute("UPDATE events SET data = ? WHERE id = ?", (orjson.dumps(event), event_id))

    # -- idempotency ----------------------------------------------------------------------

    def idempotency_get(self, key: str) -> tuple[Any, ...] | None:
        row = self.conn.execute(
            "SELECT method, path, params, status, body, request_id, created FROM idempotency WHERE key = ?",
            (key,),
        ).fetchone()
        return tuple(row) if row is not None else None

    def idempotency_prune(self, older_than: int) -> int:
        return self.conn.execute("DELETE FROM idempotency WHERE created < ?", (older_than,)).rowcount

    # -- webhook deliveries ---------------------------------------------------------------

    def due_deliveries(self, now: float, *, newest_first: bool, limit: int = 500) -> list[tuple[Any, ...]]:
        order = "DESC" if newest_first else "ASC"
        return self.conn.execute(
            "SELECT id, event_id, endpoint_id, attempts FROM webhook_deliveries "
            f"WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY id {order} LIMIT ?",
            (now, limit),
        ).fetchall()

    def next_delivery_at(self) -> float | None:
        row = self.conn.execute(
            "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending'"
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def record_delivery(
        self,
        delivery_id: int,
        *,
        status: str,
        attempts: int,
        next_at: float,
        last_status: int | None,
        last_error: str | None,
        delivered_at: float | None,
    ) -> None:
        self.conn.execute(
            "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_status = ?, "
            "last_error = ?, delivered_at = ? WHERE id = ?",
            (status, attempts, next_at, last_status, last_error, delivered_at, delivery_id),
        )

    def deliveries(self, event_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, event_id, endpoint_id, status, attempts, next_attempt_at, last_status, last_error, "
            "delivered_at FROM webhook_deliveries"
        )
        args: tuple[Any, ...] = ()
        if event_id is not None:
            sql += " WHERE event_id = ?"
            args = (event_id,)
        sql += " ORDER BY id DESC LIMIT ?"
        names = (
            "id",
            "event_id",
            "endpoint_id",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status",
            "last_error",
            "delivered_at",
        )
        return [dict(zip(names, row, strict=True)) for row in self.conn.execute(sql, (*args, limit))]

    def force_deliveries_due(self, now: float) -> None:
        self.conn.execute("UPDATE webhook_deliveries SET next_attempt_at = ? WHERE status = 'pending'", (now,))

    # -- scheduled transitions ------------------------------------------------------------

    def due_scheduled(self, now: float | None) -> list[tuple[int, str, str]]:
        args: tuple[Any, ...] = ()
        if now is None:
            sql = "SELECT id, kind, object_id FROM scheduled WHERE done = 0 ORDER BY due_at, id"
        else:
            sql = "SELECT id, kind, object_id FROM scheduled WHERE done = 0 AND due_at <= ? ORDER BY due_at, id"
            args = (now,)
        return [(int(r[0]), str(r[1]), str(r[2])) for r in self.conn.execute(sql, args)]

    def next_scheduled_at(self) -> float | None:
        row = self.conn.execute("SELECT MIN(due_at) FROM scheduled WHERE done = 0").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def begin(self) -> UnitOfWork:
        return UnitOfWork(self)

    def commit_many(self, units: list[UnitOfWork]) -> None:
        """One transaction for several units of work (group commit); all or nothing."""
        _commit_many(self, units)


class UnitOfWork:
    """Collects the writes of one request (or one background transition) and commits them in a
    single SQLite transaction, so an object, its events, its webhook deliveries and the saved
    idempotent response become durable together or not at all."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.objects: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[Any, ...]] = []
        self.deliveries: list[tuple[str, str, float]] = []
        self.scheduled: list[tuple[float, str, str]] = []
        self.statements: list[tuple[str, tuple[Any, ...]]] = []
        self.idempotency: tuple[Any, ...] | None = None

    def get(self, obj_id: str) -> dict[str, Any] | None:
        obj = self.objects.get(obj_id)
        return obj if obj is not None else self.db.get(obj_id)

    def put(self, obj: dict[str, Any]) -> None:
        self.objects[obj["id"]] = obj

    def add_event(self, event: dict[str, Any], payload: bytes, object_id: str | None) -> None:
        self.events.append((event["id"], event["type"], event["created"], object_id, payload))

    def add_delivery(self, event_id: str, endpoint_id: str, next_attempt_at: float) -> None:
        self.deliveries.append((event_id, endpoint_id, next_attempt_at))

    def schedule(self, due_at: float, kind: str, object_id: str) -> None:
        self.scheduled.append((due_at, kind, object_id))

    def execute(self, sql: str, args: tuple[Any, ...]) -> None:
        self.statements.append((sql, args))

    def save_idempotency(
        self, key: str, method: str, path: str, params: bytes, status: int, body: bytes, request_id: str, created: int
    ) -> None:
        self.idempotency = (key, method, path, params, status, body, request_id, created)

    @property
    def empty(self) -> bool:
        return not (
            self.objects or self.events or self.deliveries or self.scheduled or self.statements or self.idempotency
        )

    def commit(self) -> None:
        self.db.commit_many([self])


def _commit_many(db: Database, units: list[UnitOfWork]) -> None:
    units = [u for u in units if not u.empty]
    if not units:
        return
    conn = db.conn
    conn.execute("BEGIN")
    try:
        objects = [_row_for(o) for u in units for o in u.objects.values()]
        if objects:
            conn.executemany(_UPSERT, objects)
        events = [e for u in units for e in u.events]
        if events:
            conn.executemany("INSERT INTO events(id, type, created, object_id, data) VALUES (?, ?, ?, ?, ?)", events)
        deliveries = [d for u in units for d in u.deliveries]
        if deliveries:
            conn.executemany(
                "INSERT INTO webhook_deliveries(event_id, endpoint_id, next_attempt_at) VALUES (?, ?, ?)", deliveries
            )
        scheduled = [s for u in units for s in u.scheduled]
        if scheduled:
            conn.executemany("INSERT INTO scheduled(due_at, kind, object_id) VALUES (?, ?, ?)", scheduled)
        for unit in units:
            for sql, args in unit.statements:
                conn.execute(sql, args)
        saved = [u.idempotency for u in units if u.idempotency is not None]
        if saved:
            conn.executemany(
                "INSERT OR REPLACE INTO idempotency(key, method, path, params, status, body, request_id, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                saved,
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        db.invalidate_cache()
        raise
    for unit in units:
        for obj in unit.objects.values():
            db._remember(obj)
