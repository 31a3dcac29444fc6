"""Any server speaking the OpenAI chat-completions API (vLLM, llama.cpp server, OpenAI, ...).

>>> llm = OpenAICompatible("http://127.0.0.1:8000/v1", "qwen2.5-7b")   # doctest: +SKIP
>>> llm.complete("Say hi").text                                        # doctest: +SKIP

Transport is the standard library (``urllib``), so the core stays dependency-free. Each
request is retried on HTTP 429 and 5xx, connection errors and timeouts, with exponential
backoff and jitter (``backoff * 2**attempt`` scaled by a random factor in [0.5, 1.5), capped
at ``max_backoff``); a ``Retry-After`` header (seconds or HTTP date) sets the wait instead.
When the retries are exhausted :class:`LLMUnavailable` is raised; other 4xx replies raise
:class:`LLMError` at once; a body that is not a chat completion raises
:class:`LLMOutputError`. Token counts come from the response's ``usage``, else are estimated.
"""

from __future__ import annotations

import email.utils
import json
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.client import HTTPException
from typing import Any, Literal

import pydantic

from memkit.errors import InvalidInput, LLMError, LLMOutputError, LLMUnavailable
from memkit.llm.base import (
    LLM,
    Completion,
    GenParams,
    Message,
    estimate_prompt_tokens,
    estimate_tokens,
    schema_json,
)

ResponseFormat = Literal["none", "json_object", "json_schema"]


class _Retryable(Exception):
    """A failure worth retrying; ``retry_after`` is the server's requested wait, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date).

    >>> parse_retry_after("3"), parse_retry_after(None), parse_retry_after("soon")
    (3.0, None, None)
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT",
    ...                   now=datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC))
    5.0
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def parse_chat_completion(body: bytes, model: str, messages: list[Message]) -> Completion:
    """Turn a chat-completions response body into a Completion (LLMOutputError if malformed)."""
    raw = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(raw)
        choice = data["choices"][0]
        content = choice["message"].get("content") or ""
        if not isinstance(content, str):
            raise TypeError(f"message content is {type(content).__name__}, not a string")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise LLMOutputError(f"malformed chat-completions response: {exc!r}", raw=raw) from exc
    usage = data.get("usage") or {}
    prompt_tokens = usage.get("prompt_tokens")
    completion_tokens = usage.get("completion_tokens")
    return Completion(
        text=content,
        prompt_tokens=int(prompt_tokens)
        if isinstance(prompt_tokens, int)
        else estimate_prompt_tokens(messages),
        completion_tokens=int(completion_tokens)
        if isinstance(completion_tokens, int)
        else estimate_tokens(content),
        model=str(data.get("model") or model),
        finish_reason=choice.get("finish_reason"),
    )


class OpenAICompatible(LLM):
    """Client for ``POST {base_url}/chat/completions``.

    ``response_format`` chooses how :meth:`complete_json` constrains output on servers that
    support it: ``"json_object"`` (JSON mode), ``"json_schema"`` (the schema itself, e.g. vLLM
    and OpenAI structured outputs) or ``"none"`` (default: plain generation, then repair).
    ``complete_many`` runs up to ``concurrency`` requests at once.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60,
        max_retries: int = 4,
        backoff: float = 0.5,
        concurrency: int = 8,
        *,
        max_backoff: float = 30.0,
        response_format: ResponseFormat = "none",
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model)
        if not base_url.startswith(("http://", "https://")):
            raise InvalidInput(f"base_url must start with http:// or https://, got {base_url!r}")
        if max_retries < 0 or concurrency < 1 or timeout <= 0:
            raise InvalidInput("need max_retries >= 0, concurrency >= 1 and timeout > 0")
        if response_format not in ("none", "json_object", "json_schema"):
            raise InvalidInput(f"unknown response_format {response_format!r}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self.response_format = response_format
        self.extra_body = dict(extra_body or {})
        self._rng = random.Random()
        self._rng_lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    # ----- request building --------------------------------------------------------------

    def request_body(
        self,
        messages: list[Message],
        params: GenParams,
        schema: type[pydantic.BaseModel] | None = None,
    ) -> dict[str, Any]:
        """The JSON body sent for one completion."""
        body: dict[str, Any] = {
            **self.extra_body,
            "model": self.model,
            "messages": messages,
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if schema is not None and self.response_format == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif schema is not None and self.response_format == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema.__name__, "schema": schema_json(schema)},
            }
        return body

    # ----- transport ---------------------------------------------------------------------

    def _post_once(self, payload: bytes) -> bytes:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                detail = exc.read()[:500].decode("utf-8", errors="replace")
                retry_after = parse_retry_after(exc.headers.get("Retry-After"))
            if exc.code == 429 or exc.code >= 500:
                raise _Retryable(f"HTTP {exc.code}: {detail}", retry_after) from exc
            raise LLMError(f"{self.url} answered HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, HTTPException, OSError) as exc:
            # URLError wraps refused connections; socket timeouts are OSError (TimeoutError)
            reason = getattr(exc, "reason", exc)
            kind = "timeout" if isinstance(reason, (TimeoutError, socket.timeout)) else "error"
            raise _Retryable(f"connection {kind}: {reason!r}") from exc

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        with self._rng_lock:
            jitter = 0.5 + self._rng.random()
        return min(self.backoff * (2**attempt) * jitter, self.max_backoff)

    def _post(self, body: dict[str, Any]) -> bytes:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        last: _Retryable | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                assert last is not None
                time.sleep(self._delay(attempt - 1, last.retry_after))
            try:
                return self._post_once(payload)
            except _Retryable as exc:
                last = exc
        raise LLMUnavailable(
            f"{self.url} failed after {self.max_retries + 1} attempts; last: {last}"
        ) from last

    # ----- LLM ---------------------------------------------------------------------------

    def _request(
        self,
        messages: list[Message],
        params: GenParams,
        schema: type[pydantic.BaseModel] | None,
    ) -> Completion:
        start = time.perf_counter()
        body = self._post(self.request_body(messages, params, schema))
        out = parse_chat_completion(body, self.model, messages)
        out.latency_ms = (time.perf_counter() - start) * 1000.0
        return out

    def _complete(self, messages: list[Message], params: GenParams) -> Completion:
        return self._request(messages, params, None)

    def _complete_constrained(
        self, messages: list[Message], params: GenParams, schema: type[pydantic.BaseModel]
    ) -> Completion:
        return self._request(messages, params, schema)

    def _complete_batch(
        self,
        batch: list[list[Message]],
        params: GenParams,
        schema: type[pydantic.BaseModel] | None,
    ) -> list[Completion]:
        if len(batch) == 1 or self.concurrency == 1:
            return [self._request(m, params, schema) for m in batch]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batch))) as pool:
            futures = [pool.submit(self._request, m, params, schema) for m in batch]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    def __repr__(self) -> str:
        return f"OpenAICompatible(base_url={self.base_url!r}, model={self.model!r})"
