"""The inspector's pages, served at ``/ui`` by ``memkit serve`` (``app.include_router(router)``).

Browse (keyset-paged, filtered), an item page (versions, audit, where it lives in each index),
a read playground (several read modes side by side, with evidence and a graph view), manage
(update / delete / forget, each confirmed), and the committed eval reports. Server-rendered
HTML (Jinja2) plus one small script for keyboard navigation; nothing is loaded from elsewhere.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from memkit.errors import InvalidInput, MemkitError, NotFound
from memkit.server.ui import evals as ev
from memkit.server.ui import queries as qs
from memkit.server.ui.graph import neighbourhood_svg
from memkit.server.ui.session import (
    COOKIE,
    HERE,
    Ctx,
    context,
    form_fields,
    page,
    parse_day,
    parse_int,
    parse_moment,
    render,
)
from memkit.types import SCOPE_FIELDS

router = APIRouter(prefix="/ui", include_in_schema=False)
STATIC = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}
MAX_MODES = 6
GRAPH_HITS = 5
AUDIT_OPS = ("write", "update", "delete", "expire")


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/ui") and "//" not in target \
        else "/ui/browse"


# ---- static files and login ---------------------------------------------------------------
@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        raise NotFound(f"no static file {name!r}")
    return FileResponse(HERE / "static" / name, media_type=STATIC[name],
                        headers={"Cache-Control": "max-age=300"})


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", who=None, next=_safe_next(next), error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    data = form_fields(await request.body())
    key = data.get("key", "").strip()
    target = _safe_next(data.get("next"))
    state = request.app.state.memkit
    who = await state.call(state.keys.authenticate, key) if key else None
    if who is None:
        return render(request, "login.html", status=401, who=None, next=target,
                      error="that key is not a valid, unrevoked key of this memory")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, key, httponly=True, samesite="strict", path="/ui",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


@router.get("")
@router.get("/")
@page
async def home(request: Request) -> Response:
    await context(request)
    return RedirectResponse("/ui/browse", status_code=303)


# ---- browse -------------------------------------------------------------------------------
@router.get("/browse")
@page
async def browse(request: Request) -> Response:
    ctx = await context(request)
    p = request.query_params
    asked = {f: (p.get(f) or None) for f in SCOPE_FIELDS}
    scope = ctx.mem.scope(asked)
    filt = qs.BrowseFilter(scope=scope, q=p.get("q") or None, source=p.get("source") or None,
                           since=parse_day(p.get("since"), "since"),
                           until=parse_day(p.get("until"), "until", end=True),
                           status=p.get("status") or "current")
    before = parse_int(p.get("before"), "before")
    after = parse_int(p.get("after"), "after")
    limit = parse_int(p.get("limit"), "limit", 1, qs.MAX_PAGE) or 50
    total = await ctx.call(ctx.state.memory.store.count, scope)
    result = await ctx.call(qs.browse_page, ctx.state.memory, filt, before=before,
                            after=after, limit=limit, scope_rows=total)
    keep = {k: v for k, v in p.items() if k not in ("before", "after") and v}
    namespaces = await ctx.call(ctx.state.memory.store.namespaces) \
        if ctx.who.unrestricted else None
    return ctx.render("browse.html", page=result, filt=filt, params=keep, total=total,
                      scope=scope, limit=limit, namespaces=namespaces, now=time.time(),
                      statuses=qs.STATUSES)


# ---- one item -----------------------------------------------------------------------------
def _item_page(ctx: Ctx, item_id: int) -> dict[str, Any]:
    item = ctx.mem.get(item_id)
    chain = ctx.mem.versions(item_id)
    audit: list[dict[str, Any]] = []
    for version in chain:
        audit += ctx.state.memory.audit(version.id, limit=50)
    audit.sort(key=lambda r: r["seq"])
    views = qs.index_views(ctx.state.memory, item_id)
    return {"item": item, "chain": chain, "audit": audit, "views": views,
            "timeline": _timeline(chain)}


def _timeline(chain: list[Any]) -> list[dict[str, Any]]:
    """Bars (left %, width %) of each version's validity on one time axis."""
    if not chain:
        return []
    now = time.time()
    t0 = min(v.valid_from for v in chain)
    t1 = max(max((v.valid_until or now) for v in chain), now)
    span = max(t1 - t0, 1e-9)
    return [{"v": v, "left": 100 * (v.valid_from - t0) / span,
             "width": max(100 * ((v.valid_until or now) - v.valid_from) / span, 0.8)}
            for v in chain]


PROBE_K = 50


def _probe(ctx: Ctx, item: Any, query: str) -> dict[str, Any]:
    """Would ``query`` find this item? Its rank in each backend's top ``PROBE_K`` (within the
    item's own scope), and the reasons a read cannot return it at all."""
    blockers = []
    if item.valid_until is not None:
        blockers.append("this version was superseded: reads see current versions only "
                        "(unless as_of is before it was superseded)")
    if item.expires_at is not None and item.expires_at <= time.time():
        blockers.append("its TTL has passed: reads no longer see it (forget ttl deletes it)")
    rows: list[dict[str, Any]] = []
    for name in ctx.state.memory.backends:
        try:
            result = ctx.mem.read(query, PROBE_K, scope=item.scope.as_dict(), backend=name)
        except (MemkitError, ImportError) as exc:
            rows.append({"mode": name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        hit = next((h for h in result.hits if h.item.id == item.id), None)
        rows.append({"mode": name, "error": None, "hit": hit, "n": len(result.hits),
                     "top": result.hits[0] if result.hits else None})
    return {"query": query, "blockers": blockers, "rows": rows, "k": PROBE_K}


@router.get("/items/{item_id}")
@page
async def item(request: Request, item_id: str) -> Response:
    ctx = await context(request)
    iid = parse_int(item_id, "item id")
    assert iid is not None
    data = await ctx.call(_item_page, ctx, iid)
    query = (request.query_params.get("probe") or "").strip()
    probe = await ctx.call(_probe, ctx, data["item"], query) if query else None
    return ctx.render("item.html", now=time.time(), updated=request.query_params.get("updated"),
                      probe=probe, **data)


@router.post("/items/{item_id}/update")
@page
async def update(request: Request, item_id: str) -> Response:
    ctx = await context(request)
    iid = parse_int(item_id, "item id")
    form = await ctx.form()
    if form.get("confirm") != "yes":
        raise InvalidInput("tick 'supersede this version' to confirm the update")
    text = form.get("text", "")
    new_id = await ctx.call(ctx.mem.update, iid, text, reason=form.get("reason") or None)
    return RedirectResponse(f"/ui/items/{new_id}?updated={iid}", status_code=303)


@router.get("/items/{item_id}/delete")
@page
async def delete_confirm(request: Request, item_id: str) -> Response:
    ctx = await context(request)
    iid = parse_int(item_id, "item id")
    assert iid is not None

    def preview() -> dict[str, Any]:
        chain = ctx.mem.versions(iid)
        return {"item": ctx.mem.get(iid), "chain": chain,
                "views": {v.id: qs.index_views(ctx.state.memory, v.id) for v in chain}}

    data = await ctx.call(preview)
    return ctx.render("delete_confirm.html", reason=request.query_params.get("reason", ""),
                      **data)


@router.post("/items/{item_id}/delete")
@page
async def delete(request: Request, item_id: str) -> Response:
    ctx = await context(request)
    iid = parse_int(item_id, "item id")
    assert iid is not None
    form = await ctx.form()
    reason = (form.get("reason") or "").strip()
    if not reason:
        raise InvalidInput("reason: say why this item is deleted (it goes into the audit log)")

    def run() -> dict[str, Any]:
        chain = ctx.mem.versions(iid)
        before = {v.id: qs.index_views(ctx.state.memory, v.id) for v in chain}
        deleted = ctx.mem.delete([iid], reason=reason)
        gone = []
        for d in deleted:
            try:
                ctx.mem.get(d)
            except NotFound:
                gone.append(d)
        audit = [r for d in deleted for r in ctx.state.memory.audit(d, limit=5)
                 if r["op"] == "delete"]
        return {"deleted": deleted, "chain": chain, "gone": gone, "audit": audit,
                "removed": qs.removal_report(ctx.state.memory, before)}

    data = await ctx.call(run)
    return ctx.render("deleted.html", reason=reason, **data)


# ---- manage: forget by policy -------------------------------------------------------------
def _forget_preview(ctx: Ctx) -> dict[str, list[int]]:
    store = ctx.state.memory.store
    own = ctx.who.scope()
    out = {"ttl": store.expired_ids(scope=own)}
    if ctx.who.unrestricted:
        out["superseded"] = store.superseded_ids()
    return out


@router.get("/manage")
@page
async def manage(request: Request) -> Response:
    ctx = await context(request)
    preview = await ctx.call(_forget_preview, ctx)
    stats = await ctx.call(ctx.mem.stats)
    return ctx.render("manage.html", preview=preview, stats=stats,
                      policy=request.query_params.get("policy"), forgot=None)


@router.post("/manage/forget")
@page
async def forget(request: Request) -> Response:
    ctx = await context(request)
    form = await ctx.form()
    policy = form.get("policy", "")
    if form.get("confirm") != "yes":
        raise InvalidInput(f"confirm: tick the box to apply the {policy!r} policy")
    gone = await ctx.call(ctx.mem.forget, policy)
    audit = await ctx.call(lambda: [r for i in gone[:200]
                                    for r in ctx.state.memory.audit(i, limit=3)])
    preview = await ctx.call(_forget_preview, ctx)
    stats = await ctx.call(ctx.mem.stats)
    return ctx.render("manage.html", preview=preview, stats=stats, policy=policy,
                      forgot={"policy": policy, "ids": gone, "audit": audit})


# ---- audit log ----------------------------------------------------------------------------
def _audit_rows(ctx: Ctx, op: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The newest audit rows this key may see, and whether they are complete. An audit row
    carries no scope, so for a confined key only rows of items still in the record (and in
    its scope) can be attributed; the rows of deleted items are shown to unconfined keys."""
    mem = ctx.state.memory
    scan = limit if ctx.who.unrestricted else min(20 * limit, 20_000)
    rows = mem.audit(limit=scan)
    items = mem.store.get_many(sorted({r["item_id"] for r in rows}))
    out = []
    for row in rows:
        item = items.get(row["item_id"])
        if not ctx.who.unrestricted and (item is None or not ctx.who.can_see(item.scope)):
            continue
        if op and row["op"] != op:
            continue
        out.append({**row, "exists": item is not None,
                    "text": item.text[:120] if item is not None else None})
    return out[:limit], ctx.who.unrestricted


@router.get("/audit")
@page
async def audit(request: Request) -> Response:
    ctx = await context(request)
    op = request.query_params.get("op") or None
    if op is not None and op not in AUDIT_OPS:
        raise InvalidInput(f"op must be one of {list(AUDIT_OPS)}, got {op!r}")
    limit = parse_int(request.query_params.get("limit"), "limit", 1, 1000) or 200
    rows, complete = await ctx.call(_audit_rows, ctx, op, limit)
    return ctx.render("audit.html", rows=rows, complete=complete, op=op, ops=AUDIT_OPS,
                      limit=limit)


# ---- read playground ----------------------------------------------------------------------
def _modes(ctx: Ctx, asked: list[str]) -> list[str]:
    names = list(ctx.state.memory.backends)
    modes = [m.strip() for m in asked if m.strip()]
    if not modes:
        modes = names[:2] if len(names) > 1 else names
    if len(modes) > MAX_MODES:
        raise InvalidInput(f"mode: at most {MAX_MODES} read modes at once")
    return list(dict.fromkeys(modes))


def _graph_for(ctx: Ctx, hit: Any) -> str | None:
    """The SVG neighbourhood of a hit that HippoRAG's graph walk produced, else None."""
    ev_ = hit.evidence
    names = [n for n, b in ctx.state.memory.backends.items() if qs.backend_kind(b) == "hipporag"]
    if not names:
        return None
    graph_ev = ev_ if ev_.get("mode") == "graph" else next(
        (ev_[n] for n in names if isinstance(ev_.get(n), dict)
         and ev_[n].get("mode") == "graph"), None)
    if graph_ev is None:
        return None
    view = qs.hipporag_view(names[0], ctx.state.memory, hit.item.id)
    phrases = [r["phrase"] for r in view.rows if "phrase" in r]
    facts = [(r["subject"], r["predicate"], r["object"]) for r in view.rows if "fact" in r]
    return neighbourhood_svg(hit.item.id, phrases, facts, set(graph_ev.get("seed_phrases", [])))


def _read_one(ctx: Ctx, query: str, k: int, mode: str,
              as_of: float | None = None) -> dict[str, Any]:
    spec, _, rerank = mode.partition("|")
    t0 = time.perf_counter()
    try:
        result = ctx.mem.read(query, k, backend=spec, rerank=rerank.strip() or None,
                              as_of=as_of)
    except (MemkitError, ImportError) as exc:
        return {"mode": mode, "error": f"{type(exc).__name__}: {exc}"}
    wall = (time.perf_counter() - t0) * 1000
    graphs: dict[int, str] = {}
    for hit in result.hits[:GRAPH_HITS]:
        try:
            svg = _graph_for(ctx, hit)
        except Exception:  # noqa: BLE001 - a view must never break the read
            svg = None
        if svg:
            graphs[hit.item.id] = svg
    rendered = next((h.evidence.get("rendered") for h in result.hits
                     if isinstance(h.evidence.get("rendered"), str)), None)
    return {"mode": mode, "result": result, "wall_ms": wall, "graphs": graphs,
            "rendered": rendered, "error": None}


@router.get("/read")
@page
async def read(request: Request) -> Response:
    ctx = await context(request)
    p = request.query_params
    query = (p.get("q") or "").strip()
    k = parse_int(p.get("k"), "k", 1, 50) or 5
    modes = _modes(ctx, p.getlist("mode") + [p.get("extra") or ""])
    as_of = parse_moment(p.get("as_of"), "as_of")
    columns = []
    if query:
        for mode in modes:
            columns.append(await ctx.call(_read_one, ctx, query, k, mode, as_of))
    names = list(ctx.state.memory.backends)
    fusion = ",".join(names) if len(names) > 1 else None
    ranks = {c["mode"]: {h.item.id: h.rank for h in c["result"].hits}
             for c in columns if c.get("result") is not None}

    def ranks_of(item_id: int, mode: str) -> list[tuple[str, int]]:
        """Where else this item ranked: [(mode, rank)] over the other columns."""
        return [(m, r[item_id]) for m, r in ranks.items() if m != mode and item_id in r]

    return ctx.render("read.html", query=query, k=k, modes=modes, columns=columns,
                      fusion=fusion, extra=p.get("extra") or "", ranks_of=ranks_of,
                      as_of=p.get("as_of") or "")


# ---- eval reports -------------------------------------------------------------------------
@router.get("/evals")
@page
async def evals(request: Request) -> Response:
    ctx = await context(request)
    runs = await ctx.call(ev.list_runs)
    return ctx.render("evals.html", runs=runs, root=ev.reports_dir())


@router.get("/evals/compare")
@page
async def evals_compare(request: Request) -> Response:
    ctx = await context(request)
    runs = await ctx.call(ev.list_runs)
    a_name, b_name = request.query_params.get("a"), request.query_params.get("b")
    a = await ctx.call(ev.load_run, a_name) if a_name else None
    b = await ctx.call(ev.load_run, b_name) if b_name else None
    rows = ev.compare(a, b) if a and b else []
    same = ev.same_data(a, b) if a and b else True
    return ctx.render("eval_compare.html", runs=runs, a=a, b=b, rows=rows, same=same)


@router.get("/evals/{run}")
@page
async def eval_run(request: Request, run: str) -> Response:
    ctx = await context(request)
    r = await ctx.call(ev.load_run, run)
    report = (r.path / "report.md").read_text() if "report.md" in r.files else ""
    return ctx.render("eval_run.html", run=r, report=ev.markdown_html(report),
                      rows=ev.compare(r, r))


@router.get("/evals/{run}/files/{filename}")
@page
async def eval_file(request: Request, run: str, filename: str) -> Response:
    await context(request)
    path, media = ev.run_file(ev.load_run(run), filename)
    return FileResponse(path, media_type=media, headers={"X-Content-Type-Options": "nosniff"})
