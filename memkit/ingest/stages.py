"""The stages of batch ingest, as plain functions: admit -> skip what is in -> embed ->
commit -> index. ``Memory.write_many`` runs them as a local pipeline
(:mod:`memkit.ingest.pipeline`); the Ray path (:mod:`memkit.scale`) runs the same functions as
Ray Data stages.

* :func:`admit_batch` validates records (bad ones are reported, never raised);
* :func:`fresh` drops items whose text is already current in their scope (what makes a rerun
  after an interruption cheap: nothing already in is embedded again);
* :func:`embed_texts` embeds a batch's passages (no ids needed: it can run anywhere, before
  the commit, on another thread or a Ray actor); a batch the embedder fails on is retried
  in halves down to single texts, and :func:`drop_unembeddable` reports (and does not write)
  a text it fails on alone;
* :func:`commit_batch` writes the items and their vectors in **one transaction**: a kill at
  any point leaves either both or neither, and the change feed makes every index catch up.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from memkit.admission import admit_record
from memkit.errors import InvalidInput
from memkit.store.sqlite import NewItem, Store, content_hash, scope_key

if TYPE_CHECKING:
    from memkit.embed.base import Embedder
    from memkit.vectors.items import ItemVectors

log = logging.getLogger("memkit.ingest")

_CHUNK = 500


@dataclass
class Batch:
    """One batch moving through the stages: admitted items (in record order), the records
    rejected on admission, and the items not already in the memory."""

    number: int
    items: list[NewItem] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    todo: list[NewItem] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)  # the record number of each item


def admit_batch(number: int, records: Sequence[tuple[int, Any]], *, default_scope: Any,
                max_chars: int) -> Batch:
    """Admit ``(record number, record)`` pairs; invalid ones land in ``rejected``."""
    batch = Batch(number)
    for n, record in records:
        try:
            batch.items.append(admit_record(record, default_scope=default_scope,
                                            max_chars=max_chars))
            batch.numbers.append(n)
        except InvalidInput as exc:
            batch.rejected.append((f"record {n}", str(exc)))
    return batch


def fresh(store: Store, items: Sequence[NewItem]) -> list[NewItem]:
    """The items whose text is not current in their scope yet (first of duplicates within
    ``items`` kept); a read-only query, so it is only a hint: the commit re-checks."""
    keys = [(scope_key(it.scope), content_hash(it.text)) for it in items]
    present: set[tuple[str, str]] = set()
    by_scope: dict[str, list[str]] = {}
    for key, chash in keys:
        by_scope.setdefault(key, []).append(chash)
    for key, hashes in by_scope.items():
        for start in range(0, len(hashes), _CHUNK):
            chunk = hashes[start:start + _CHUNK]
            present.update((key, r[0]) for r in store.conn.execute(
                f"SELECT content_hash FROM items WHERE scope_key = ? AND valid_until IS NULL "
                f"AND content_hash IN ({','.join('?' * len(chunk))})", [key, *chunk]))
    out, seen = [], set()
    for it, k in zip(items, keys, strict=True):
        if k not in present and k not in seen:
            seen.add(k)
            out.append(it)
    return out


def embed_texts(embedder: Embedder, texts: Sequence[str], batch_size: int = 64
                ) -> list[np.ndarray | str]:
    """Passage vectors of ``texts``, row by row; when the embedder fails on a batch, each
    half is retried on its own (down to single texts, so one bad text among thousands costs
    a few retries, not one call per text), and a text that fails alone gets the error (a
    str) instead of a vector: the pipeline reports that record and does not write it, so no
    item is in the record that no index can hold."""
    if not texts:
        return []
    try:
        return list(embedder.embed(list(texts), batch_size=batch_size))
    except Exception as exc:  # one bad text must not stop the ingest
        if len(texts) == 1:
            return [f"{type(exc).__name__}: {exc}"[:300]]
        log.warning("embedding a batch of %d failed (%s); retrying it in halves",
                    len(texts), exc)
    half = len(texts) // 2
    return embed_texts(embedder, texts[:half], batch_size) + \
        embed_texts(embedder, texts[half:], batch_size)


def unembeddable(error: str) -> str:
    """The report's reason for a record not written because the embedder failed on it
    (``error``: what :func:`embed_texts` returned for it); one wording for every path."""
    return f"not written: the embedder failed on this text ({error})"


def drop_unembeddable(batch: Batch, vecs: Sequence[np.ndarray | str]
                      ) -> tuple[list[np.ndarray], list[tuple[str, str]]]:
    """Take the items the embedder failed on out of ``batch`` (``vecs`` rows match
    ``batch.todo``); returns the remaining vectors and a (record, reason) per dropped item."""
    failed = {id(it): v for it, v in zip(batch.todo, vecs, strict=True) if isinstance(v, str)}
    if not failed:
        return [v for v in vecs if not isinstance(v, str)], []
    rejected = [(f"record {n}", unembeddable(failed[id(it)]))
                for n, it in zip(batch.numbers, batch.items, strict=True) if id(it) in failed]
    keep = [(n, it) for n, it in zip(batch.numbers, batch.items, strict=True)
            if id(it) not in failed]
    batch.numbers, batch.items = [n for n, _ in keep], [it for _, it in keep]
    kept = [(it, v) for it, v in zip(batch.todo, vecs, strict=True) if not isinstance(v, str)]
    batch.todo = [it for it, _ in kept]
    return [v for _, v in kept if not isinstance(v, str)], rejected


def commit_batch(store: Store, vectors: ItemVectors, items: Sequence[NewItem],
                 todo: Sequence[NewItem], vecs: Sequence[np.ndarray | None]
                 ) -> list[tuple[int, bool]]:
    """Write ``items`` to the record and the vectors of the newly created ones (``vecs``
    rows match ``todo``; None: not embedded here, the indexer embeds it), in one
    transaction. Returns ``(id, created)`` per item."""
    by_text = {(scope_key(it.scope), it.text): v for it, v in zip(todo, vecs, strict=True)
               if v is not None}
    with store.transaction():
        out = store.insert_items(list(items))
        rows = [(iid, by_text[(scope_key(it.scope), it.text)])
                for it, (iid, created) in zip(items, out, strict=True)
                if created and (scope_key(it.scope), it.text) in by_text]
        if rows:
            vectors.put([r[0] for r in rows], np.vstack([r[1] for r in rows]))
    return out
