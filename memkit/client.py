"""``memkit.Client``: a served memory with the same methods and return types as ``Memory``.

Moving from embedded to served is one line::

    mem = memkit.Memory.open("./mem")                       # embedded
    mem = memkit.Client("http://127.0.0.1:8765", key)       # served

    mem.write("Dana prefers aisle seats.", scope={"user": "dana"})
    mem.read("Dana seat preference", k=3, scope={"user": "dana"})[0].text

Item ids are the server's: a namespaced key gets its namespace's opaque ids (stable ints below
2**52 that say nothing about other tenants' writes), an admin key the memory's own ids.

Server errors come back as the memkit exception they were raised as (NotFound, InvalidInput,
ScopeViolation, ...); a missing/invalid key raises :class:`AuthError`; the server being
unreachable or failing raises :class:`ServerError`.
"""

from __future__ import annotations

import json as _json
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from memkit._deps import require
from memkit.errors import (
    ConfigError,
    InvalidInput,
    LLMError,
    LLMOutputError,
    LLMUnavailable,
    MemkitError,
    MissingDependency,
    NotFound,
    ScopeViolation,
    StoreCorrupt,
)
from memkit.types import Cost, Hit, MemoryItem, ReadResult, Scope, WriteReport, Written

if TYPE_CHECKING:
    from memkit.conversation import RememberReport


class AuthError(ScopeViolation):
    """The server rejected the API key (missing, unknown or revoked)."""


class ServerError(MemkitError):
    """The server could not be reached, timed out, or failed (5xx); ``status`` is the HTTP
    status (0 when there was no response) and ``request_id`` the id to look up in its log."""

    def __init__(self, message: str, status: int = 0, request_id: str | None = None) -> None:
        self.status = status
        self.request_id = request_id
        super().__init__(message)


_BY_TYPE: dict[str, type[MemkitError]] = {
    cls.__name__: cls for cls in (NotFound, ScopeViolation, InvalidInput, ConfigError,
                                  StoreCorrupt, LLMError, LLMUnavailable, LLMOutputError)
}


def _scope_json(scope: Scope | dict[str, Any] | str | None) -> dict[str, Any] | None:
    if scope is None:
        return None
    if isinstance(scope, str):
        return {"namespace": scope}
    if isinstance(scope, Scope):
        return scope.as_dict()
    if isinstance(scope, dict):
        return {k: v for k, v in scope.items() if v is not None}
    raise InvalidInput(f"scope must be a Scope, dict or namespace string, got {type(scope)}")


def item_from_json(data: dict[str, Any]) -> MemoryItem:
    fields = dict(data)
    fields.pop("invalidated", None)  # derived from event_until
    fields["scope"] = Scope.coerce({k: v for k, v in data["scope"].items() if v is not None})
    return MemoryItem(**fields)


def _seconds(value: Any) -> Any:
    return value.total_seconds() if isinstance(value, timedelta) else value


def _record(record: Any) -> Any:
    if not isinstance(record, dict):
        return record
    out = dict(record)
    if "scope" in out:
        out["scope"] = _scope_json(out["scope"])
    if "ttl" in out:
        out["ttl"] = _seconds(out["ttl"])
    return out


class Client:
    """A served memory (``memkit serve``) behind the Memory API.

    ``url``: the server's base URL; ``key``: an API key (``memkit keys create``), or None for
    a server running without keys on loopback. ``timeout``: seconds per request."""

    def __init__(self, url: str, key: str | None = None, *, timeout: float = 60.0,
                 retries: int = 2, headers: dict[str, str] | None = None) -> None:
        httpx = require("httpx", "server", "memkit.Client")
        self.url = url.rstrip("/")
        hdrs = {"User-Agent": "memkit-client"}
        if key:
            hdrs["Authorization"] = f"Bearer {key}"
        hdrs.update(headers or {})
        self._httpx = httpx
        self._http = httpx.Client(base_url=self.url, headers=hdrs, timeout=timeout,
                                  transport=httpx.HTTPTransport(retries=retries))
        self.last_request_id: str | None = None

    # ---- plumbing -----------------------------------------------------------------------
    def _call(self, method: str, path: str, json: Any = None) -> Any:
        httpx = self._httpx
        try:
            content = None if json is None else _json.dumps(json, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"request is not JSON-serialisable: {exc}") from exc
        try:
            response = self._http.request(
                method, path, content=content,
                headers={"Content-Type": "application/json"} if content is not None else None)
        except httpx.TimeoutException as exc:
            raise ServerError(f"{method} {path}: timed out ({exc})") from exc
        except httpx.HTTPError as exc:
            raise ServerError(f"{method} {path}: cannot reach {self.url}: {exc}") from exc
        self.last_request_id = response.headers.get("x-request-id")
        if response.status_code < 400:
            return response.json()
        try:
            err = response.json()["error"]
            type_, message = str(err.get("type", "")), str(err.get("message", ""))
        except Exception:
            type_, message = "", response.text[:500]
        rid = self.last_request_id
        status = response.status_code
        if status == 401:
            raise AuthError(message or "missing or invalid API key")
        if type_ == "MissingDependency":
            raise MissingDependency(message, "server")
        cls = _BY_TYPE.get(type_)
        if cls is not None and (status < 500 or issubclass(cls, (LLMError, StoreCorrupt))):
            raise cls(message)
        if status == 403:
            raise ScopeViolation(message)
        if status == 404:
            raise NotFound(message)
        if status in (400, 413, 422):
            raise InvalidInput(message)
        raise ServerError(f"{method} {path}: HTTP {status}: {message} (request id {rid})",
                          status=status, request_id=rid)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the Memory API -----------------------------------------------------------------
    def write(self, text: str, scope: Scope | dict[str, Any] | str | None = None, *,
              source: str | None = None, confidence: float = 1.0, ttl: float | None = None,
              metadata: dict[str, Any] | None = None) -> int:
        """Write one memory; returns its id (see ``Memory.write``)."""
        return self.put(text, scope, source=source, confidence=confidence, ttl=ttl,
                        metadata=metadata).id

    def put(self, text: str, scope: Scope | dict[str, Any] | str | None = None, *,
            source: str | None = None, confidence: float = 1.0, ttl: float | None = None,
            metadata: dict[str, Any] | None = None) -> Written:
        """Write one memory; ``Written(id, created)`` (see ``Memory.put``)."""
        body = {"text": text, "scope": _scope_json(scope), "source": source,
                "confidence": confidence, "ttl": _seconds(ttl), "metadata": metadata}
        reply = self._call("POST", "/v1/memories", body)
        return Written(int(reply["id"]), bool(reply["created"]))

    def write_many(self, records: Iterable[str | dict[str, Any]], *,
                   scope: Scope | dict[str, Any] | str | None = None, batch_size: int = 64,
                   progress: bool | None = None, total: int | None = None,
                   desc: str = "writing") -> WriteReport:
        """Write many memories, ``batch_size`` per request; returns one merged WriteReport."""
        report = WriteReport()
        if total is None and hasattr(records, "__len__"):
            total = len(records)  # type: ignore[arg-type]
        bar = tqdm(total=total, desc=desc, disable=not progress, unit="item")
        batch: list[Any] = []
        offset = 0

        def send() -> None:
            nonlocal offset
            payload = [_record(r) for r in batch]
            out = self._call("POST", "/v1/memories/batch",
                             {"records": payload, "scope": _scope_json(scope),
                              "batch_size": min(batch_size, 1000)})
            report.added.extend(int(i) for i in out["added"])
            report.skipped_duplicates += int(out["skipped_duplicates"])
            for rej in out["rejected"]:
                what = rej["what"]
                if what.startswith("record "):  # renumber from this batch to the whole input
                    what = f"record {offset + int(what.split()[1])}"
                report.rejected.append((what, rej["reason"]))
            offset += len(batch)
            bar.update(len(batch))
            batch.clear()

        for record in records:
            batch.append(record)
            if len(batch) >= batch_size:
                send()
        if batch:
            send()
        bar.close()
        return report

    def read(self, query: str, k: int = 5, scope: Scope | dict[str, Any] | str | None = None,
             *, backend: str | Sequence[str] | None = None, as_of: float | None = None,
             budget_tokens: int | None = None, rerank: str | None = None,
             valid_at: float | str | None = None, include_invalidated: bool = False
             ) -> ReadResult:
        """The ``k`` best memories for ``query`` in ``scope`` (see ``Memory.read``)."""
        body = {"query": query, "k": k, "scope": _scope_json(scope),
                "backend": backend if backend is None or isinstance(backend, str)
                else list(backend), "as_of": as_of, "budget_tokens": budget_tokens,
                "rerank": rerank, "valid_at": valid_at,
                "include_invalidated": include_invalidated}
        out = self._call("POST", "/v1/read", body)
        hits = [Hit(item=item_from_json(h["item"]), score=float(h["score"]),
                    backend=h["backend"], rank=int(h["rank"]), evidence=h["evidence"])
                for h in out["hits"]]
        return ReadResult(query=out["query"], hits=hits, cost=Cost(**out["cost"]),
                          timings=out["timings"])

    def answer(self, question: str, k: int = 5,
               scope: Scope | dict[str, Any] | str | None = None,
               **read_options: Any) -> dict[str, Any]:
        """The server LLM's answer: ``{"answer", "cited_ids", "detail"}``."""
        body = {"question": question, "k": k, "scope": _scope_json(scope), **read_options}
        return dict(self._call("POST", "/v1/answer", body))

    def remember(self, messages: Sequence[dict[str, Any]],
                 scope: Scope | dict[str, Any] | str | None = None, *, session: str | None = None,
                 at: float | str | None = None, facts: str = "auto",
                 contradictions: str = "auto") -> RememberReport:
        """Store a conversation's turns and facts (see ``Memory.remember``)."""
        from memkit.conversation import RememberReport

        body = {"messages": list(messages), "scope": _scope_json(scope), "session": session,
                "at": at, "facts": facts, "contradictions": contradictions}
        out = self._call("POST", "/v1/remember", body)
        return RememberReport(turns=out["turns"], facts=out["facts"],
                              duplicates=out["duplicates"], invalidated=out["invalidated"],
                              decisions=out["decisions"])

    def revert(self, item_id: int, *, reason: str | None = None) -> int:
        """Undo the latest change of an item's chain (see ``Memory.revert``)."""
        return int(self._call("POST", f"/v1/memories/{int(item_id)}/revert",
                              {"reason": reason})["id"])

    def get(self, item_id: int) -> MemoryItem:
        return item_from_json(self._call("GET", f"/v1/memories/{int(item_id)}"))

    def versions(self, item_id: int) -> list[MemoryItem]:
        return [item_from_json(d) for d in
                self._call("GET", f"/v1/memories/{int(item_id)}/versions")]

    def update(self, item_id: int, text: str, *, reason: str | None = None,
               metadata: dict[str, Any] | None = None, confidence: float | None = None,
               source: str | None = None) -> int:
        body = {"text": text, "reason": reason, "metadata": metadata, "confidence": confidence,
                "source": source}
        return int(self._call("PATCH", f"/v1/memories/{int(item_id)}", body)["id"])

    def delete(self, ids: int | Sequence[int], *, reason: str | None = None) -> list[int]:
        id_list = [int(ids)] if isinstance(ids, int) else [int(i) for i in ids]
        if not id_list:
            return []
        out = self._call("POST", "/v1/memories/delete", {"ids": id_list, "reason": reason})
        return [int(i) for i in out["ids"]]

    def forget(self, policy: str = "ttl") -> list[int]:
        return [int(i) for i in self._call("POST", "/v1/forget", {"policy": policy})["ids"]]

    def stats(self) -> dict[str, Any]:
        return dict(self._call("GET", "/v1/stats"))

    # ---- served-only --------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/health"))

    def whoami(self) -> dict[str, Any]:
        return dict(self._call("GET", "/v1/whoami"))
