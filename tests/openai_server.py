"""A real HTTP server on 127.0.0.1 speaking OpenAI chat-completions, scripted per request:
the LLM boundary for tests of memkit's OpenAI-compatible client and what runs on it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Action = Callable[["Handler", dict[str, Any]], None]


@dataclass
class Script:
    """What the fake server does: scripted actions first, then ``default`` for every request."""

    actions: list[Action] = field(default_factory=list)
    default: Action | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # silence the access log
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        script = self.server.script
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with script.lock:
            script.requests.append(body)
            script.headers.append(dict(self.headers))
            script.times.append(time.monotonic())
            action = script.actions.pop(0) if script.actions else script.default
            script.in_flight += 1
            script.max_in_flight = max(script.max_in_flight, script.in_flight)
        self._counted = True
        try:
            assert self.path == "/v1/chat/completions", self.path
            assert action is not None, "unscripted request"
            action(self, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)
        finally:
            self._leave()

    def _leave(self) -> None:
        """The request stops counting as in flight - before its reply is written, since the
        client may send its next request the moment it has the reply (counting after the
        write let a loaded machine see concurrency + 1)."""
        if getattr(self, "_counted", False):
            self._counted = False
            with self.server.script.lock:
                self.server.script.in_flight -= 1

    def send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self._leave()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    script: Script

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # broken connections after client timeouts are expected


def reply(content: str, usage: dict[str, int] | None = None, model: str = "served-model") -> Action:
    def act(h: Handler, body: dict[str, Any]) -> None:
        data: dict[str, Any] = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
        }
        if usage is not None:
            data["usage"] = usage
        h.send(200, json.dumps(data).encode())

    return act


def status(code: int, headers: dict[str, str] | None = None) -> Action:
    def act(h: Handler, body: dict[str, Any]) -> None:
        h.send(code, b'{"error": {"message": "scripted failure"}}', headers)

    return act


def raw(payload: bytes) -> Action:
    return lambda h, body: h.send(200, payload)


def sleep_then(seconds: float, then: Action) -> Action:
    def act(h: Handler, body: dict[str, Any]) -> None:
        time.sleep(seconds)
        then(h, body)

    return act


def echo(delay: Callable[[str], float] = lambda s: 0.0) -> Action:
    """Reply with the last user message reversed, after a per-prompt delay."""

    def act(h: Handler, body: dict[str, Any]) -> None:
        text = body["messages"][-1]["content"]
        time.sleep(delay(text))
        reply(text[::-1], {"prompt_tokens": len(text), "completion_tokens": 1})(h, body)

    return act


@contextmanager
def serving() -> Iterator[_Server]:
    """A started server with an empty script; shut down on exit."""
    srv = _Server(("127.0.0.1", 0), Handler)
    srv.script = Script()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()
