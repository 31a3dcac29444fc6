"""Who a browser request is, and how a page is rendered.

The inspector uses the REST API's keys and confinement unchanged: a request presents a key in
``Authorization: Bearer`` / ``X-API-Key`` (as the REST API reads it) or, from a browser, in the
``memkit_ui_key`` cookie that the login form sets (HttpOnly, SameSite=Strict, path ``/ui``, a
session cookie). Either way the key goes through :meth:`ServerState.authenticate` and every
memory call goes through :class:`~memkit.server.service.ScopedMemory`, so a page shows exactly
what the REST API would return to that key.

Forms that change the memory carry a CSRF token derived from the key (the cookie alone,
replayed by another site, cannot produce it; SameSite=Strict already keeps the cookie off
cross-site requests).

>>> csrf_token("mk_0123456789ab_x") == csrf_token("mk_0123456789ab_x")
True
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import anyio.to_thread
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from memkit._deps import require
from memkit.errors import InvalidInput, MemkitError, NotFound, ScopeViolation
from memkit.server.auth import Principal
from memkit.server.service import RequestTimeout, ScopedMemory, ServerState

COOKIE = "memkit_ui_key"
HERE = Path(__file__).parent
_OPEN_SECRET = secrets.token_hex(16)  # CSRF seed for keyless (open, loopback) servers
_env: Any = None
_STATUS = [(NotFound, 404), (ScopeViolation, 403), (InvalidInput, 400)]


class LoginNeeded(Exception):
    """No valid key: the page redirects to the login form."""


def csrf_token(key: str | None) -> str:
    seed = key if key else _OPEN_SECRET
    return hmac.new(b"memkit-ui-csrf", seed.encode(), hashlib.sha256).hexdigest()[:32]


def presented(request: Request) -> str | None:
    """The key a request presents: the REST API's headers first, then the UI cookie."""
    auth = request.headers.get("authorization") or ""
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.headers.get("x-api-key") or request.cookies.get(COOKIE) or None


def form_fields(body: bytes) -> dict[str, str]:
    """An url-encoded form body as a dict (the last value of a repeated field wins).

    >>> form_fields(b"a=1&b=x+y&a=2")
    {'a': '2', 'b': 'x y'}
    """
    text = body.decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


class Ctx:
    """One authenticated UI request: the server state, the principal, the scoped memory."""

    def __init__(self, request: Request, state: ServerState, who: Principal,
                 key: str | None) -> None:
        self.request = request
        self.state = state
        self.who = who
        self.key = key
        self.mem = ScopedMemory(state.memory, who, state.default_namespace)
        self.csrf = csrf_token(key)

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await self.state.call(fn, *args, **kwargs)

    async def form(self) -> dict[str, str]:
        """The url-encoded form body (last value wins); checks the CSRF token."""
        data = form_fields(await self.request.body())
        if not hmac.compare_digest(data.get("csrf", ""), self.csrf):
            raise ScopeViolation("the form's CSRF token is missing or wrong: reload the page")
        return data

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return render(self.request, name, status=status, who=self.who, csrf=self.csrf,
                      backends=list(self.state.memory.backends), **context)


async def context(request: Request) -> Ctx:
    state: ServerState = request.app.state.memkit
    key = presented(request)
    who = await anyio.to_thread.run_sync(state.authenticate, key)
    if who is None:
        raise LoginNeeded()
    request.scope.setdefault("state", {})["memkit_principal"] = who
    return Ctx(request, state, who, key)


def _templates() -> Any:
    global _env
    if _env is None:
        jinja2 = require("jinja2", "server", "the memkit inspector (/ui)")
        _env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                                  autoescape=True, trim_blocks=True, lstrip_blocks=True)
        _env.filters["when"] = when
        _env.filters["ago"] = ago
        _env.filters["num"] = num
        _env.filters["scope"] = scope_text
        _env.filters["q"] = lambda s: quote(str(s), safe="")
    return _env


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates().get_template(name).render(request=request, path=request.url.path,
                                                  **context)
    return HTMLResponse(html, status_code=status, headers={
        "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                   "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"})


def page(fn: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """A UI page: memkit errors become an HTML error page, a missing key the login form."""

    @wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Response:
        request: Request = kwargs["request"]
        try:
            return await fn(*args, **kwargs)
        except LoginNeeded:
            if request.method == "GET":
                back = quote(str(request.url.path) + ("?" + request.url.query
                                                      if request.url.query else ""), safe="")
                return RedirectResponse(f"/ui/login?next={back}", status_code=303)
            return render(request, "login.html", status=401, who=None,
                          error="missing or invalid API key", next="/ui/browse")
        except (MemkitError, RequestTimeout) as exc:
            status = next((s for cls, s in _STATUS if isinstance(exc, cls)),
                          504 if isinstance(exc, RequestTimeout) else 500)
            who = request.scope.get("state", {}).get("memkit_principal")
            return render(request, "error.html", status=status, who=who,
                          error=f"{type(exc).__name__}: {exc}", code=status)

    return run


# ---- template filters ------------------------------------------------------------------
def when(t: float | None) -> str:
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(t))) + " UTC"


def ago(t: float | None, now: float | None = None) -> str:
    """``in 5m`` / ``3h ago``.

    >>> ago(100.0, now=40.0), ago(0.0, now=7200.0)
    ('in 1m', '2h ago')
    """
    if t is None:
        return "-"
    now = time.time() if now is None else now
    d = float(t) - now
    s = abs(d)
    text = f"{s:.0f}s" if s < 60 else f"{s / 60:.0f}m" if s < 3600 else \
        f"{s / 3600:.0f}h" if s < 172800 else f"{s / 86400:.0f}d"
    return f"in {text}" if d > 0 else f"{text} ago"


def num(x: Any, digits: int = 4) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    return str(x) if isinstance(x, int) else f"{x:.{digits}g}"


def scope_text(scope: Any) -> str:
    d = scope.as_dict() if hasattr(scope, "as_dict") else dict(scope or {})
    return " / ".join(f"{k}={v}" for k, v in d.items() if v) or "-"


def parse_day(value: str | None, field: str, end: bool = False) -> float | None:
    """``YYYY-MM-DD`` (UTC) as epoch seconds; ``end``: the end of that day."""
    if not value:
        return None
    try:
        t = float(calendar.timegm(time.strptime(value, "%Y-%m-%d")))
    except ValueError:
        raise InvalidInput(f"{field} must be a date YYYY-MM-DD, got {value!r}") from None
    return t + 86400 if end else t


def parse_moment(value: str | None, field: str) -> float | None:
    """``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM[:SS]`` (UTC) or epoch seconds, as epoch seconds.

    >>> parse_moment("1970-01-02", "t"), parse_moment("1970-01-01T00:01", "t")
    (86400.0, 60.0)
    """
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return float(calendar.timegm(time.strptime(value, fmt)))
        except ValueError:
            continue
    raise InvalidInput(f"{field} must be a UTC time YYYY-MM-DD[THH:MM[:SS]] or epoch "
                       f"seconds, got {value!r}")


def parse_int(value: str | None, field: str, lo: int = 1, hi: int = 2**63 - 1) -> int | None:
    if value in (None, ""):
        return None
    try:
        n = int(str(value))
    except ValueError:
        raise InvalidInput(f"{field} must be an integer, got {value!r}") from None
    if not lo <= n <= hi:
        raise InvalidInput(f"{field} must be between {lo} and {hi}, got {n}")
    return n
