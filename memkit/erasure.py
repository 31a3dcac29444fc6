"""What a delete erases, and the code that makes it so.

``Memory.delete`` (and ``forget``, which expires items) removes, for every version of the
deleted items:

* the record rows (``items``), with SQLite's ``secure_delete`` on, so freed pages are zeroed;
  the write-ahead log is checkpointed and truncated right after, so no copy of the deleted
  rows stays in ``memory.db-wal`` (when another process holds an old snapshot open, the
  truncation waits for the next delete or close - reported by :func:`checkpoint`);
* every derived row: the shared item vector; HippoRAG's passage node and vector, the phrases
  and facts no remaining passage supports (phrases another passage still mentions stay, as
  that passage's data); Panini's workspace, QA pairs and their vectors;
* the vectors in the faiss files (flat indexes drop them; HNSW indexes zero the stored vector
  of the tombstone), and every index file is saved again at once, so the files on disk no
  longer hold the vector;
* cached extractions of the deleted texts (:mod:`memkit.ingest.extractions`: spaCy
  extractions, parse-writer workspaces);
* cached LLM calls whose prompt contains the deleted text (e.g. OpenIE extraction prompts)
  or a string derived only from it (``Backend.erasure_terms``: e.g. a phrase or fact that
  only this item supported, as shown to the recognition filter);
* audit detail: earlier rows of a deleted item keep only operation, item id and time (the
  ``source`` and the reasons given for updates are erased). The delete's own row keeps the
  reason the caller gave - callers must not put the deleted content in it.

What stays: the ids, the fact that an item existed and when it was written, updated and
deleted (the audit trail an operator needs), and backups or copies made outside memkit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from memkit.store.sqlite import Store

log = logging.getLogger("memkit.erasure")

LLM_CACHE_TABLE = "llm_cache"


def chain_items(store: Store, ids: Sequence[int], whole_chain: bool = True
                ) -> dict[int, str]:
    """Id -> text of every version of these items' chains (or of these items only), read
    before they are deleted."""
    # ids that cannot exist (wrong type, out of SQLite's range) have nothing to erase; the
    # store's delete reports them
    ids = [int(i) for i in ids
           if isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**63]
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    sql = f"SELECT id, text FROM items WHERE id IN ({marks})"
    args: list[int] = list(ids)
    if whole_chain:
        sql += f" OR root_id IN (SELECT root_id FROM items WHERE id IN ({marks}))"
        args += ids
    return {int(i): t for i, t in store.conn.execute(sql, args)}


def redact_audit(store: Store, ids: Sequence[int]) -> None:
    """Drop source and reasons from the earlier audit rows of deleted items (the delete and
    expire rows themselves keep their reason)."""
    ids = [int(i) for i in ids]
    with store.transaction() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            conn.execute(f"UPDATE audit SET detail = NULL, reason = NULL WHERE op NOT IN "
                         f"('delete', 'expire') AND item_id IN ({','.join('?' * len(chunk))})",
                         chunk)


def purge_llm_cache(store: Store, texts: Sequence[str]) -> int:
    """Delete cached LLM calls whose request contains any of ``texts``; returns how many."""
    if not texts or LLM_CACHE_TABLE not in store.table_names():
        return 0
    removed = 0
    with store.transaction() as conn:
        for text in dict.fromkeys(texts):
            # requests are stored as JSON: match the text as JSON writes it, and as written
            escaped = json.dumps(text)[1:-1]
            cur = conn.execute(f"DELETE FROM {LLM_CACHE_TABLE} WHERE instr(request, ?) > 0 "
                               f"OR instr(request, ?) > 0", (escaped, text))
            removed += max(cur.rowcount, 0)
    return removed


def checkpoint(store: Store) -> bool:
    """Leave no deleted row's bytes in the store's files (:meth:`Store.compact`: SQLite
    checkpoints and truncates the WAL, Postgres vacuums); False when another connection's
    open snapshot kept it from completing."""
    busy = not store.compact()
    if busy:
        log.info("WAL checkpoint after a delete was blocked by another reader; retried later")
    return not busy
