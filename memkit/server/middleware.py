"""ASGI plumbing every request goes through: a request id, a body-size limit, a last-resort
error handler (a JSON body, never a stack trace) and one structured access-log line.

>>> valid_request_id("abc-123"), valid_request_id("no spaces please")
(True, False)
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("memkit.server.access")
error_log = logging.getLogger("memkit.server.error")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
REQUEST_ID_HEADER = "x-request-id"


def valid_request_id(value: str) -> bool:
    return bool(_REQUEST_ID.match(value))


def error_body(status: int, type_: str, code: str, message: str,
               request_id: str | None) -> bytes:
    return json.dumps({"error": {"type": type_, "code": code, "message": message,
                                 "request_id": request_id}}).encode()


class _TooLarge(Exception):
    pass


class ServingMiddleware:
    """Request id (``X-Request-ID``, echoed when the client sent a sane one), body limit
    (413 on ``Content-Length`` or on the streamed byte count), catch-all 500 and access log."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = 16 * 2**20) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        asked = headers.get(REQUEST_ID_HEADER, "")
        request_id = asked if valid_request_id(asked) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = {"code": 0, "started": False, "too_large": False}

        async def send_wrapped(message: Message) -> None:
            if status["too_large"]:
                return  # we answer 413 ourselves once the app gives up
            if message["type"] == "http.response.start":
                status["started"], status["code"] = True, message["status"]
                raw = [(k, v) for k, v in message.get("headers", [])
                       if k.lower() != REQUEST_ID_HEADER.encode()]
                raw.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = raw
            await send(message)

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    status["too_large"] = True
                    return {"type": "http.disconnect"}
            return message

        async def answer(code: int, type_: str, err: str, text: str) -> None:
            status["started"], status["code"] = True, code
            body = error_body(code, type_, err, text, request_id)
            await send({"type": "http.response.start", "status": code, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (REQUEST_ID_HEADER.encode(), request_id.encode())]})
            await send({"type": "http.response.body", "body": body})

        limit_msg = f"request body is over the server's limit of {self.max_body_bytes} bytes"
        try:
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or
                                       int(length) > self.max_body_bytes):
                if length.isdigit():
                    await answer(413, "PayloadTooLarge", "payload_too_large", limit_msg)
                else:
                    await answer(400, "InvalidInput", "invalid_input", "bad Content-Length")
                return
            await self.app(scope, receive_limited, send_wrapped)
            if status["too_large"]:
                await answer(413, "PayloadTooLarge", "payload_too_large", limit_msg)
        except Exception:
            error_log.exception("unhandled error", extra={"request_id": request_id})
            if status["too_large"]:
                await answer(413, "PayloadTooLarge", "payload_too_large", limit_msg)
            elif not status["started"]:
                await answer(500, "InternalError", "internal_error",
                             "internal server error (see the server log for this request id)")
        finally:
            state = scope.get("state", {})
            principal = state.get("memkit_principal")
            access_log.info("request", extra={
                "request_id": request_id, "method": scope.get("method"),
                "path": scope.get("path"), "status": status["code"],
                "ms": round((time.perf_counter() - t0) * 1000, 2),
                "key_id": getattr(principal, "key_id", None),
                "client": (scope.get("client") or ("", 0))[0],
            })


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: ts, level, logger, msg and any ``extra`` fields."""

    _SKIP = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
        "message", "asctime", "color_message"}  # uvicorn's ANSI-coloured duplicate

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3), "level": record.levelname.lower(),
            "logger": record.name, "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._SKIP and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) \
                    else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str = "info", stream: Any = None) -> None:
    """JSON logs on stderr for memkit.server and uvicorn (called by ``memkit serve`` only)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    for name in ("memkit", "uvicorn", "uvicorn.error", "mcp"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(level.upper() if name != "mcp" else "WARNING")
