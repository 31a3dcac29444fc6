"""``GET /metrics``: request counts, latencies and LLM usage in the Prometheus text format.

:func:`install_metrics` adds an ASGI middleware that counts every HTTP request by method,
route template (``/v1/memories/{item_id}``, never the raw path, so ids do not become label
values) and status, with a latency histogram, and the ``/metrics`` route that renders them
together with the memory's LLM usage (calls, tokens, cache hits) and item count. No label
ever holds memory text, a key or a namespace. With API keys, scraping needs an admin key
(``Authorization: Bearer``); a loopback server without keys serves it openly.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

from memkit._deps import require

require("starlette", "server", "memkit serve metrics")

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Thread-safe request counters and latency histograms."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.buckets: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self.sums: dict[tuple[str, str], float] = defaultdict(float)
        self.counts: dict[tuple[str, str], int] = defaultdict(int)
        self.started = time.time()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, str(status))] += 1
            key = (method, route)
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.buckets[key][i] += 1
            self.sums[key] += seconds
            self.counts[key] += 1

    def render(self) -> list[str]:
        with self._lock:
            lines = ["# HELP memkit_http_requests_total HTTP requests by method, route and "
                     "status.", "# TYPE memkit_http_requests_total counter"]
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(f'memkit_http_requests_total{{method="{method}",route='
                             f'"{_escape(route)}",status="{status}"}} {n}')
            lines += ["# HELP memkit_http_request_duration_seconds HTTP request latency.",
                      "# TYPE memkit_http_request_duration_seconds histogram"]
            for (method, route), counts in sorted(self.buckets.items()):
                labels = f'method="{method}",route="{_escape(route)}"'
                for bound, n in zip(BUCKETS, counts, strict=True):
                    lines.append(f'memkit_http_request_duration_seconds_bucket{{{labels},'
                                 f'le="{bound}"}} {n}')
                total = self.counts[(method, route)]
                lines.append(f'memkit_http_request_duration_seconds_bucket{{{labels},'
                             f'le="+Inf"}} {total}')
                lines.append(f"memkit_http_request_duration_seconds_sum{{{labels}}} "
                             f"{self.sums[(method, route)]:.6f}")
                lines.append(f"memkit_http_request_duration_seconds_count{{{labels}}} {total}")
            lines += ["# HELP memkit_uptime_seconds Seconds since the app started.",
                      "# TYPE memkit_uptime_seconds gauge",
                      f"memkit_uptime_seconds {time.time() - self.started:.3f}"]
        return lines


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricsMiddleware:
    """Counts and times every HTTP request (pure ASGI, so streaming responses pass through)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapped)
        finally:
            self.metrics.observe(scope.get("method", "?"), _route(scope), status[0],
                                 time.perf_counter() - start)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    raw = str(scope.get("path", ""))
    if raw == "/mcp" or raw.startswith("/mcp/"):
        return "/mcp"
    return "(unmatched)"


def _memory_lines(app: Any) -> list[str]:
    state = getattr(app.state, "memkit", None)
    if state is None:
        return []
    mem = state.memory
    lines = ["# HELP memkit_items Current items in the memory.", "# TYPE memkit_items gauge",
             f"memkit_items {mem.store.count()}"]
    usage = getattr(mem.llm, "usage", None)
    if usage is not None:
        for name, value, help_text in (
                ("memkit_llm_calls_total", usage.calls, "LLM calls that reached the model."),
                ("memkit_llm_cached_calls_total", usage.cached_calls,
                 "LLM calls answered from the call cache."),
                ("memkit_llm_prompt_tokens_total", usage.prompt_tokens, "LLM prompt tokens."),
                ("memkit_llm_completion_tokens_total", usage.completion_tokens,
                 "LLM completion tokens.")):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter",
                      f"{name} {value}"]
    return lines


def install_metrics(app: Any) -> Metrics:
    """Add the counting middleware and ``GET /metrics`` to a FastAPI app."""
    metrics = Metrics()
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    async def metrics_endpoint(request: Request) -> PlainTextResponse:
        from memkit.server.app import presented_key

        state = getattr(request.app.state, "memkit", None)
        if state is None:
            return PlainTextResponse("starting\n", status_code=503)
        who = await state.call(state.authenticate, presented_key(request.headers))
        if who is None or not who.admin:  # open (loopback, no keys) mode is admin
            return PlainTextResponse("metrics need an admin key\n", status_code=401)
        extra = await state.call(_memory_lines, request.app)
        body = "\n".join([*metrics.render(), *extra]) + "\n"
        return PlainTextResponse(body, media_type=CONTENT_TYPE)

    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    return metrics
