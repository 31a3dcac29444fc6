"""A persistent SQLite call cache in front of any LLM.

>>> from memkit.llm.fake import ScriptedLLM
>>> inner = ScriptedLLM({"hi": "hello"})
>>> llm = CachedLLM(inner, ":memory:")
>>> [llm.complete("hi").cached, llm.complete("hi").cached]
[False, True]
>>> inner.usage.calls, llm.usage.calls, llm.usage.cached_calls
(1, 1, 1)

The key is the SHA-256 of the canonical JSON of (model, messages, params) -- plus the JSON
schema when generation was constrained to one -- so any change of prompt, temperature,
max_tokens, stop or seed is a miss. Replies at ``temperature > 0`` are cached too: a cached
memory replays the same sample, which is what reproducible runs want.

Storage: table ``llm_cache`` (created with ``CREATE TABLE IF NOT EXISTS``) in the database
given -- a path (a connection of our own, WAL mode) or an open
``sqlite3.Connection`` such as the memory's ``memory.db``. A shared connection is used from the
thread that created the cache; other threads use a second connection to the same file, so
the cache is safe to call from any thread. Writes made through a shared connection that is
inside a transaction join that transaction (they commit with it).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydantic

from memkit.errors import ConfigError, InvalidInput, StoreCorrupt
from memkit.llm.base import LLM, BatchLLM, Completion, GenParams, Message, schema_json

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def cache_key(
    model: str,
    messages: list[Message],
    params: GenParams,
    schema: type[pydantic.BaseModel] | None = None,
) -> str:
    """SHA-256 hex digest of the canonical JSON of one request.

    >>> cache_key("m", [{"role": "user", "content": "hi"}], GenParams())[:12]
    '08cdb06791d1'
    """
    return hashlib.sha256(request_json(model, messages, params, schema).encode()).hexdigest()


def request_json(
    model: str,
    messages: list[Message],
    params: GenParams,
    schema: type[pydantic.BaseModel] | None = None,
) -> str:
    """Canonical JSON of a request: sorted keys, no spaces, UTF-8 text kept as is."""
    request: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "params": {**asdict(params), "stop": list(params.stop)},
    }
    if schema is not None:
        request["schema"] = schema_json(schema)
    return json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class CachedLLM(BatchLLM):
    """Wrap ``inner`` with a persistent cache; hits cost no call and count as ``cached_calls``.

    ``usage`` of the wrapper counts misses in ``calls`` (with their tokens) and hits in
    ``cached_calls``; ``inner.usage`` counts only the calls that reached the model.
    """

    def __init__(
        self,
        inner: LLM,
        db: Any,
        *,
        table: str = "llm_cache",
    ) -> None:
        super().__init__(inner.model)
        if not _IDENT.match(table):
            raise InvalidInput(f"cache table name must be an SQL identifier, got {table!r}")
        self.inner = inner
        self.table = table
        self._lock = threading.RLock()
        self._owner: int | None = None  # thread allowed to use a shared connection
        self._other: sqlite3.Connection | None = None
        self._owns_conn = isinstance(db, (str, Path))
        self._file = ""
        if getattr(db, "kind", None) == "postgres":
            # a memkit PostgresStore: its connection runs this module's portable SQL on a
            # pooled connection per call (safe from any thread)
            self._conn = db.conn
            with self._lock:
                self._setup(self._conn)
            return
        if self._owns_conn:
            self._conn = self._connect(str(db))
        else:
            conn = getattr(db, "conn", db)  # a sqlite3.Connection (or an object holding one)
            if not isinstance(conn, sqlite3.Connection):
                raise InvalidInput(
                    "db must be a path or a sqlite3.Connection, "
                    f"got {type(db).__name__}"
                )
            self._conn = conn
            self._owner = threading.get_ident()
        self._file = self._conn.execute("PRAGMA database_list").fetchone()[2] or ""
        with self._lock:
            self._setup(self._conn)

    # ----- storage -----------------------------------------------------------------------

    @staticmethod
    def _connect(path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        if path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        if self._file and not conn.in_transaction:
            conn.execute("PRAGMA journal_mode=WAL")
        self._write(
            conn,
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            "key TEXT PRIMARY KEY, model TEXT NOT NULL, request TEXT NOT NULL, "
            "text TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, "
            "completion_tokens INTEGER NOT NULL, created_at TEXT NOT NULL)",
            (),
        )

    def _connection(self) -> sqlite3.Connection:
        """The connection this thread may use (call with the lock held)."""
        if self._owner is None or self._owner == threading.get_ident():
            return self._conn
        if not self._file:
            return self._conn  # in-memory: only works if opened with check_same_thread=False
        if self._other is None:
            self._other = self._connect(self._file)
        return self._other

    @staticmethod
    def _write(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> None:
        was_in_transaction = conn.in_transaction
        conn.execute(sql, args)
        if not was_in_transaction and conn.in_transaction:
            conn.commit()

    def _get(self, key: str) -> tuple[str, int, int, str] | None:
        with self._lock:
            try:
                row = (
                    self._connection()
                    .execute(
                        f"SELECT text, prompt_tokens, completion_tokens, model "
                        f"FROM {self.table} WHERE key = ?",
                        (key,),
                    )
                    .fetchone()
                )
            except sqlite3.ProgrammingError as exc:
                raise ConfigError(
                    "the LLM cache's in-memory database was opened in another thread; open it "
                    "with check_same_thread=False or give CachedLLM a file path"
                ) from exc
            except sqlite3.DatabaseError as exc:
                raise StoreCorrupt(f"LLM cache table {self.table!r} cannot be read: {exc}") from exc
        return None if row is None else (row[0], int(row[1]), int(row[2]), row[3])

    def _put(self, key: str, request: str, c: Completion) -> None:
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock:
            try:
                self._write(
                    self._connection(),
                    f"INSERT INTO {self.table} (key, model, request, text, prompt_tokens, "
                    "completion_tokens, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET model = excluded.model, "
                    "request = excluded.request, text = excluded.text, "
                    "prompt_tokens = excluded.prompt_tokens, "
                    "completion_tokens = excluded.completion_tokens, "
                    "created_at = excluded.created_at",
                    (key, c.model, request, c.text, c.prompt_tokens, c.completion_tokens, created),
                )
            except sqlite3.DatabaseError as exc:
                raise StoreCorrupt(
                    f"LLM cache table {self.table!r} cannot be written: {exc}"
                ) from exc

    def __len__(self) -> int:
        """Number of cached replies."""
        with self._lock:
            return int(
                self._connection().execute(f"SELECT count(*) FROM {self.table}").fetchone()[0]
            )

    def close(self) -> None:
        """Close the connections this cache opened (a shared connection is left open)."""
        with self._lock:
            if self._other is not None:
                self._other.close()
                self._other = None
            if self._owns_conn:
                self._conn.close()

    def __enter__(self) -> CachedLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- LLM ---------------------------------------------------------------------------

    def _complete_batch(
        self,
        batch: list[list[Message]],
        params: GenParams,
        schema: type[pydantic.BaseModel] | None,
    ) -> list[Completion]:
        requests = [request_json(self.model, m, params, schema) for m in batch]
        keys = [hashlib.sha256(r.encode()).hexdigest() for r in requests]
        results: list[Completion | None] = [None] * len(batch)
        misses: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            start = time.perf_counter()
            hit = None if key in misses else self._get(key)
            if hit is None:
                misses.setdefault(key, []).append(i)
                continue
            text, prompt_tokens, completion_tokens, model = hit
            results[i] = Completion(
                text,
                prompt_tokens,
                completion_tokens,
                model,
                cached=True,
                latency_ms=(time.perf_counter() - start) * 1000.0,
            )
        if misses:
            first = [idx[0] for idx in misses.values()]
            fresh = self.inner.complete_many(
                [batch[i] for i in first],
                temperature=params.temperature,
                max_tokens=params.max_tokens,
                stop=params.stop,
                seed=params.seed,
                json_schema=schema,
            )
            for (key, idx), c in zip(misses.items(), fresh, strict=True):
                self._put(key, requests[idx[0]], c)
                results[idx[0]] = c
                for dup in idx[1:]:  # the same request twice in one batch: one call
                    results[dup] = Completion(
                        c.text, c.prompt_tokens, c.completion_tokens, c.model, cached=True
                    )
        return [r for r in results if r is not None]
