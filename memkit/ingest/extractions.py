"""ExtractionCache: what an LLM-free extractor made of a text, kept in the record by content hash.

Extraction (spaCy parsing, relation patterns) is the slow half of building a graph index, and
its result depends only on the text and the extractor: a rebuild after a graph option
changed, a resumed ingest, a re-open in another process or a Ray stage's extractions should
not parse the same passages again. Rows of ``extractions`` are keyed by (kind, the
extractor's ``cache_key``, SHA-256 of the item text); the key covers the extractor's settings,
the spaCy and model versions and a hash of the extraction code itself, so a changed setting or
a changed memkit never reuses a stale result (the old rows of that kind are dropped). LLM
extractions are not stored here: the LLM response cache already keeps them.

Like every derived row it is erased with its item: :func:`purge_extractions` drops the rows of
deleted texts (``Memory.delete``). An extraction may also depend on what the index held when
it was made (HippoRAG's extractors link n-grams that are already phrase nodes), so a cached
one is the extraction of the text's first indexing - what a rebuild in the same order
recomputes.

>>> from memkit.store.sqlite import Store
>>> cache = ExtractionCache(Store.open(":memory:"), "demo", "v1")
>>> cache.put({"Paris is in France.": {"triples": [["Paris", "is in", "France"]]}})
>>> cache.get(["Paris is in France.", "Lyon"])
{'Paris is in France.': {'triples': [['Paris', 'is in', 'France']]}}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from memkit.store.sqlite import Store
from memkit.vectors.strings import delete_by_text_hash, text_hash

TABLE = "extractions"
MIGRATIONS = [
    f"CREATE TABLE {TABLE} (kind TEXT NOT NULL, config TEXT NOT NULL, hash TEXT NOT NULL, "
    "value TEXT NOT NULL, PRIMARY KEY (kind, config, hash))",
]
_CHUNK = 500


def code_fingerprint(*files: str | Path) -> str:
    """SHA-256 (16 hex digits) of these source files' bytes: changes with the code."""
    h = hashlib.sha256()
    for f in files:
        h.update(Path(f).read_bytes())
    return h.hexdigest()[:16]


def settings_key(**settings: Any) -> str:
    """A stable key for a set of settings (sorted JSON, hashed)."""
    blob = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def spacy_versions(model: str) -> dict[str, str]:
    """spaCy's version and the model's (package version, or a hash of a model directory's
    meta.json), read without importing spaCy or loading the model."""
    from importlib import metadata

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "absent"

    meta = Path(model) / "meta.json"
    model_version = code_fingerprint(meta) if meta.is_file() else \
        version(model.replace("_", "-"))
    return {"spacy": version("spacy"), "model": f"{model}={model_version}"}


class ExtractionCache:
    """Cached JSON results of one extractor (``kind``, ``config`` = its cache key) by text.

    Thread-safe: statements run on the store's locked connection; two writers racing on one
    text keep the first row (``ON CONFLICT DO NOTHING``)."""

    def __init__(self, store: Store, kind: str, config: str) -> None:
        self.store = store
        self.kind = kind
        self.config = config
        store.migrate(TABLE, MIGRATIONS)
        meta = f"{TABLE}.{kind}"
        if store.get_meta(meta) != config:
            with store.transaction() as conn:  # another extractor's results are stale now
                conn.execute(f"DELETE FROM {TABLE} WHERE kind = ? AND config <> ?",
                             (kind, config))
                conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                             "DO UPDATE SET value = excluded.value", (meta, config))

    def get(self, texts: Iterable[str]) -> dict[str, Any]:
        """Text -> cached value, for the texts that have one."""
        by_hash = {text_hash(t): t for t in dict.fromkeys(texts)}
        hashes = list(by_hash)
        out: dict[str, Any] = {}
        for start in range(0, len(hashes), _CHUNK):
            chunk = hashes[start:start + _CHUNK]
            for h, value in self.store.conn.execute(
                    f"SELECT hash, value FROM {TABLE} WHERE kind = ? AND config = ? AND hash IN "
                    f"({','.join('?' * len(chunk))})", [self.kind, self.config, *chunk]):
                out[by_hash[h]] = json.loads(value)
        return out

    def put(self, values: Mapping[str, Any]) -> None:
        """Store JSON-serialisable values by text (a text already cached keeps its value)."""
        if not values:
            return
        rows = [(self.kind, self.config, text_hash(t), json.dumps(v, ensure_ascii=False))
                for t, v in values.items()]
        with self.store.transaction() as conn:
            conn.executemany(
                f"INSERT INTO {TABLE} (kind, config, hash, value) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (kind, config, hash) DO NOTHING", rows)

    def count(self) -> int:
        return int(self.store.conn.execute(
            f"SELECT COUNT(*) FROM {TABLE} WHERE kind = ? AND config = ?",
            (self.kind, self.config)).fetchone()[0])

    def clear(self) -> None:
        with self.store.transaction() as conn:
            conn.execute(f"DELETE FROM {TABLE} WHERE kind = ?", (self.kind,))


def purge_extractions(store: Store, texts: Sequence[str]) -> int:
    """Drop every cached extraction (any kind) of these texts; returns how many rows."""
    if not texts or TABLE not in store.table_names():
        return 0
    return delete_by_text_hash(store, TABLE, texts)
