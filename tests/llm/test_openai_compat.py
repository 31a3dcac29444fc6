"""OpenAICompatible against a real HTTP server on 127.0.0.1 speaking chat-completions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
from openai_server import (  # tests/openai_server.py
    Handler,
    _Server,
    echo,
    raw,
    reply,
    serving,
    sleep_then,
    status,
)

from memkit.errors import InvalidInput, LLMError, LLMOutputError, LLMUnavailable
from memkit.llm import OpenAICompatible
from memkit.llm.openai_compat import parse_chat_completion, parse_retry_after


@pytest.fixture
def server() -> Iterator[_Server]:
    with serving() as srv:
        yield srv


def client(srv: _Server, **kwargs: Any) -> OpenAICompatible:
    opts: dict[str, Any] = {"timeout": 2.0, "max_retries": 2, "backoff": 0.01}
    opts.update(kwargs)
    return OpenAICompatible(f"http://127.0.0.1:{srv.server_port}/v1/", "test-model", **opts)


def test_normal_reply_with_usage(server: _Server) -> None:
    server.script.actions = [reply("Paris", {"prompt_tokens": 11, "completion_tokens": 2})]
    llm = client(server, api_key="sk-test")
    out = llm.complete(
        [{"role": "system", "content": "terse"}, {"role": "user", "content": "Capital?"}],
        max_tokens=5,
        stop=["\n"],
    )
    assert (out.text, out.prompt_tokens, out.completion_tokens) == ("Paris", 11, 2)
    assert out.model == "served-model" and out.finish_reason == "stop" and not out.cached
    assert out.latency_ms > 0
    sent = server.script.requests[0]
    assert sent == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "terse"},
            {"role": "user", "content": "Capital?"},
        ],
        "temperature": 0.0,
        "max_tokens": 5,
        "stop": ["\n"],
        "seed": 0,
    }
    assert server.script.headers[0]["Authorization"] == "Bearer sk-test"
    assert (llm.usage.calls, llm.usage.prompt_tokens, llm.usage.completion_tokens) == (1, 11, 2)


def test_missing_usage_is_estimated(server: _Server) -> None:
    server.script.actions = [reply("abcdefgh")]  # no usage block
    out = client(server).complete("abcd")
    assert (out.prompt_tokens, out.completion_tokens) == (1 + 4, 2)


def test_500_then_success_is_retried(server: _Server) -> None:
    server.script.actions = [status(500), status(503), reply("ok")]
    llm = client(server, max_retries=2)
    assert llm.complete("hi").text == "ok"
    assert len(server.script.requests) == 3
    assert llm.usage.calls == 1  # retries are one call


def test_persistent_500_raises_unavailable(server: _Server) -> None:
    server.script.default = status(500)
    with pytest.raises(LLMUnavailable, match="3 attempts.*HTTP 500"):
        client(server, max_retries=2).complete("hi")
    assert len(server.script.requests) == 3


def test_client_errors_are_not_retried(server: _Server) -> None:
    server.script.default = status(400)
    with pytest.raises(LLMError, match="HTTP 400") as info:
        client(server).complete("hi")
    assert not isinstance(info.value, LLMUnavailable)
    assert len(server.script.requests) == 1


def test_timeout_is_retried_then_unavailable(server: _Server) -> None:
    server.script.default = sleep_then(1.0, reply("too late"))
    start = time.monotonic()
    with pytest.raises(LLMUnavailable, match="timeout"):
        client(server, timeout=0.2, max_retries=1).complete("hi")
    assert len(server.script.requests) == 2
    assert time.monotonic() - start < 1.5  # two 0.2 s timeouts + backoff, not two 1 s sleeps


def test_timeout_then_success(server: _Server) -> None:
    server.script.actions = [sleep_then(0.6, reply("late")), reply("fast")]
    assert client(server, timeout=0.2, max_retries=1).complete("hi").text == "fast"


def test_connection_refused_is_unavailable() -> None:
    srv = _Server(("127.0.0.1", 0), Handler)
    port = srv.server_port
    srv.server_close()  # nothing listens on the port now
    llm = OpenAICompatible(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff=0.01)
    with pytest.raises(LLMUnavailable, match="connection error"):
        llm.complete("hi")


@pytest.mark.parametrize(
    "payload",
    [
        b"this is not json",
        b'{"choices": []}',
        b'{"object": "chat.completion"}',
        b'{"choices": [{"message": {"content": 42}}]}',
    ],
)
def test_malformed_body_raises_output_error(server: _Server, payload: bytes) -> None:
    server.script.default = raw(payload)
    with pytest.raises(LLMOutputError) as info:
        client(server).complete("hi")
    assert info.value.raw == payload.decode()
    assert len(server.script.requests) == 1  # not retried


def test_429_honours_retry_after(server: _Server) -> None:
    server.script.actions = [status(429, {"Retry-After": "0.3"}), reply("ok")]
    llm = client(server, backoff=0.001)
    assert llm.complete("hi").text == "ok"
    t0, t1 = server.script.times
    assert t1 - t0 >= 0.28  # waited as told, not the 1 ms backoff


def test_429_retry_after_is_capped(server: _Server) -> None:
    server.script.actions = [status(429, {"Retry-After": "120"}), reply("ok")]
    llm = client(server, max_backoff=0.05)
    start = time.monotonic()
    assert llm.complete("hi").text == "ok"
    assert time.monotonic() - start < 1.0


def test_complete_many_keeps_order_under_concurrency(server: _Server) -> None:
    # earlier prompts are slower, so replies arrive in reverse order
    server.script.default = echo(delay=lambda text: 0.05 * (8 - int(text[1:])))
    llm = client(server, concurrency=4)
    prompts = [f"p{i}" for i in range(8)]
    out = llm.complete_many(prompts)
    assert [c.text for c in out] == [p[::-1] for p in prompts]
    assert server.script.max_in_flight == 4  # bounded and actually concurrent
    assert llm.usage.calls == 8 and llm.usage.prompt_tokens == 16


def test_complete_many_raises_the_first_failure(server: _Server) -> None:
    server.script.default = echo()
    server.script.actions = [status(400)]
    with pytest.raises(LLMError, match="HTTP 400"):
        client(server, concurrency=1).complete_many(["a", "b", "c"])


class City(pydantic.BaseModel):
    city: str


def test_complete_json_over_http_with_response_format(server: _Server) -> None:
    server.script.actions = [reply('```json\n{"city": "Paris",}\n```')]
    llm = client(server, response_format="json_schema")
    assert llm.complete_json("Capital of France?", City) == City(city="Paris")
    sent = server.script.requests[0]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "City"
    assert sent["json_schema"]["schema"]["required"] == ["city"]


def test_json_object_mode_and_none(server: _Server) -> None:
    server.script.default = reply('{"city": "Rome"}')
    client(server, response_format="json_object").complete_json("x", City)
    client(server).complete_json("x", City)
    assert server.script.requests[0]["response_format"] == {"type": "json_object"}
    assert "response_format" not in server.script.requests[1]


def test_constructor_validation() -> None:
    with pytest.raises(InvalidInput):
        OpenAICompatible("localhost:8000", "m")
    with pytest.raises(InvalidInput):
        OpenAICompatible("http://x", "m", concurrency=0)
    with pytest.raises(InvalidInput):
        OpenAICompatible("http://x", "m", response_format="xml")  # type: ignore[arg-type]


def test_parse_helpers() -> None:
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("-3") == 0.0
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=now) == 10.0
    body = b'{"choices": [{"message": {"content": null}, "finish_reason": "length"}]}'
    out = parse_chat_completion(body, "m", [{"role": "user", "content": "x"}])
    assert (out.text, out.model, out.finish_reason, out.completion_tokens) == ("", "m", "length", 0)
