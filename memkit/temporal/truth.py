"""Changing what holds in the world without forgetting what memkit knew: invalidate, revert.

An item's event-time interval ``[event_from, event_until)`` says when its fact holds. Ending it
(:func:`invalidate`) or undoing a change (:func:`revert`) never edits a row: it writes the next
*system-time* version of the item (same text, new interval) with
:meth:`~memkit.store.sqlite.Store.supersede`, so ``read(as_of=t)`` still answers with what
memkit believed at ``t``, and the audit row of the new version says why (``reason``) and, for a
contradiction, which item ended it (``detail["invalidated_by"]``).

>>> from memkit import Memory
>>> from memkit.embed import HashEmbedder
>>> mem = Memory.open(None, embedder=HashEmbedder())
>>> paris = mem.write("Alice lives in Paris.", event_from="2020-01-01")
>>> ended = mem.invalidate(paris, at="2024-03-01", reason="moved")
>>> mem.get(ended).invalidated, mem.get(paris).is_current
(True, False)
>>> [h.text for h in mem.read("Where does Alice live?", valid_at="2022-01-01")]
['Alice lives in Paris.']
>>> mem.read("Where does Alice live?").hits   # not true any more
[]
>>> restored = mem.revert(ended)
>>> [h.text for h in mem.read("Where does Alice live?")]
['Alice lives in Paris.']
>>> mem.close()
"""

from __future__ import annotations

from typing import Any

from memkit.errors import InvalidInput
from memkit.store.sqlite import NewItem, Store
from memkit.types import MemoryItem


def _next_version(store: Store, old: MemoryItem, *, text: str | None = None,
                  event_from: float | None, event_until: float | None,
                  reason: str | None, detail: dict[str, Any]) -> int:
    new = NewItem(text=old.text if text is None else text, scope=old.scope, source=old.source,
                  confidence=old.confidence, expires_at=old.expires_at,
                  metadata=dict(old.metadata), event_from=event_from, event_until=event_until)
    return store.supersede(old.id, new, reason=reason, detail=detail)


def invalidate(store: Store, item: MemoryItem, at: float, *, reason: str | None = None,
               by: int | None = None, explanation: str | None = None) -> int:
    """End current ``item`` in event time at ``at``; returns the new version's id.

    ``by`` names the item that contradicted it (kept in the audit row with ``explanation``).
    An ``at`` before the item's ``event_from`` is refused (that is not an end, it is a
    different fact)."""
    if not item.is_current:
        raise InvalidInput(f"item {item.id} was superseded by a newer version; invalidate "
                           "the current one")
    if item.event_from is not None and at < item.event_from:
        raise InvalidInput(f"cannot invalidate item {item.id} at {at}: before its event_from "
                           f"({item.event_from})")
    if item.event_until is not None and item.event_until <= at:
        raise InvalidInput(f"item {item.id} already ended at {item.event_until}")
    detail: dict[str, Any] = {"event_until": at}
    if by is not None:
        detail["invalidated_by"] = by
    if explanation:
        detail["explanation"] = explanation
    return _next_version(store, item, event_from=item.event_from, event_until=at,
                         reason=reason or "invalidated", detail=detail)


def reshape(store: Store, item: MemoryItem, event_from: float | None,
            event_until: float | None, *, reason: str, detail: dict[str, Any]) -> int:
    """A new version of current ``item`` with another event-time interval."""
    return _next_version(store, item, event_from=event_from, event_until=event_until,
                         reason=reason, detail=detail)


def revert(store: Store, item_id: int, *, reason: str | None = None) -> int:
    """Undo the latest change of the chain ``item_id`` belongs to: a new version carrying the
    text, metadata and event-time interval of the version before the current one. Returns
    the new version's id. Reverting twice redoes the change."""
    chain = store.versions(item_id)
    current = [v for v in chain if v.is_current]
    if not current:
        raise InvalidInput(f"item {item_id} has no current version to revert")
    if len(chain) < 2:
        raise InvalidInput(f"item {item_id} has a single version: nothing to revert")
    head = current[0]
    before = next(v for v in chain if v.id == head.supersedes)
    new = NewItem(text=before.text, scope=head.scope, source=before.source,
                  confidence=before.confidence, expires_at=head.expires_at,
                  metadata=dict(before.metadata), event_from=before.event_from,
                  event_until=before.event_until)
    return store.supersede(head.id, new, reason=reason or "revert",
                           detail={"reverts": head.id, "restores": before.id})
