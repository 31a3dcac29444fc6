"""The graph with link edges (:mod:`memkit.backends.hipporag.linking`), built at read time.

Linking is a retrieval setting (``link_mentions``, ``link_title_weight``,
``link_alias_weight``, ``session_weight`` / ``session_window``, ``speaker_weight``,
``date_weight`` / ``date_session`` in
:class:`~memkit.backends.hipporag.retriever.RetrievalOptions`): the links are derived from
the record (the passages' texts and metadata) and the phrase table, so one built graph can
be read with and without them. The linked arrays are computed once per (graph generation,
settings) and kept in memory; nothing is written.

Date nodes (:mod:`memkit.backends.hipporag.dates`) are appended as the last phrase nodes
(ids from ``DATE_ID_BASE``), one per (scope, calendar span), joined to their passages by
context edges of weight 1 - so a scoped view, which rebuilds the context edges from its
allowed passages, sees a date node only through its own passages, and no date node joins
passages of two scopes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from memkit.backends.hipporag.dates import DateSpan, anchor_date, day, resolve
from memkit.backends.hipporag.graph import GraphArrays
from memkit.backends.hipporag.linking import LinkPassage, Links, build_links
from memkit.backends.hipporag.retriever import RetrievalOptions
from memkit.errors import InvalidInput
from memkit.nlp import normalise_phrase
from memkit.store.sqlite import Store


@dataclass(frozen=True)
class LinkSettings:
    mentions: bool = False
    title_weight: float = 0.0
    alias_weight: float = 0.0
    session_weight: float = 0.0
    session_window: int = 0
    dates: bool = False
    date_session: bool = False

    @classmethod
    def of(cls, o: RetrievalOptions) -> LinkSettings:
        """The linking settings of a read; InvalidInput names a negative one."""
        for name in ("link_title_weight", "link_alias_weight", "session_weight",
                     "session_window", "speaker_weight", "date_weight",
                     "date_question_weight"):
            if getattr(o, name) < 0:
                raise InvalidInput(f"hipporag option {name} must be >= 0, "
                                   f"got {getattr(o, name)!r}")
        return cls(bool(o.link_mentions), float(o.link_title_weight),
                   float(o.link_alias_weight), float(o.session_weight), int(o.session_window),
                   o.date_weight > 0, bool(o.date_session) and o.date_weight > 0)

    @property
    def active(self) -> bool:
        return self.mentions or self.title_weight > 0 or self.alias_weight > 0 or \
            self.session_weight > 0 or self.dates


def _session_of(metadata: dict[str, Any]) -> Any:
    for key in ("session", "session_id"):
        value = metadata.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return value
    return None


def read_passages(store: Store, ids: np.ndarray) -> list[LinkPassage]:
    """What linking needs of the graph's passages, from the record."""
    out: list[LinkPassage] = []
    id_list = [int(i) for i in ids]
    for start in range(0, len(id_list), 500):
        chunk = id_list[start:start + 500]
        items = store.get_many(chunk)
        for iid in chunk:
            it = items.get(iid)
            if it is None:
                continue
            title = it.metadata.get("title")
            s = it.scope
            speaker = it.metadata.get("speaker")
            date = it.metadata.get("date")
            out.append(LinkPassage(iid, it.text, title if isinstance(title, str) else None,
                                   (s.namespace, s.user, s.agent, s.session),
                                   _session_of(it.metadata), float(iid),
                                   speaker if isinstance(speaker, str) else None,
                                   date if isinstance(date, str) and date else None))
    return out


def link_graph(g: GraphArrays, links: Links, s: LinkSettings) -> GraphArrays:
    """``g`` plus the link edges: mention edges join the context edges (weight 1, counted
    in the phrases' passage counts); title, alias and session edges are kept in
    ``link_edges`` as well (a scoped view keeps those between nodes it sees)."""
    P = g.n_phrases
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []

    def add(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> None:
        rows.extend([a, b])
        cols.extend([b, a])
        vals.extend([w, w])

    if links.mentions:
        m = np.array(links.mentions, dtype=np.int64)
        add(g.passage_nodes(m[:, 0]), g.phrase_nodes(m[:, 1]), np.ones(len(m)))
    extra: list[np.ndarray] = []
    if links.titles and s.title_weight > 0:
        t = np.array(links.titles, dtype=np.int64)
        extra.append(np.stack([g.passage_nodes(t[:, 0]), g.passage_nodes(t[:, 1]),
                               np.full(len(t), s.title_weight)], axis=1))
    if links.aliases and s.alias_weight > 0:
        a = np.array(links.aliases, dtype=np.int64)
        extra.append(np.stack([g.phrase_nodes(a[:, 0]), g.phrase_nodes(a[:, 1]),
                               np.full(len(a), s.alias_weight)], axis=1))
    if links.sessions and s.session_weight > 0:
        se = np.array(links.sessions, dtype=np.float64)
        extra.append(np.stack([g.passage_nodes(se[:, 0].astype(np.int64)),
                               g.passage_nodes(se[:, 1].astype(np.int64)),
                               se[:, 2] * s.session_weight], axis=1))
    link_edges = np.concatenate(extra).astype(np.float64) if extra else np.zeros((0, 3))
    if len(link_edges):
        add(link_edges[:, 0].astype(np.int64), link_edges[:, 1].astype(np.int64),
            link_edges[:, 2])
    if not rows:
        return replace(g, link_edges=link_edges)
    n = g.n_nodes
    more = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n, n))
    adj = (g.adj + more).tocsr()
    adj.sum_duplicates()
    adj.sort_indices()
    ctx = (adj[P:, :P] > 0).astype(np.int64)
    counts = np.asarray(ctx.sum(axis=0)).ravel().astype(np.int64)
    return replace(g, adj=adj, phrase_passages=counts, link_edges=link_edges)


#: the first phrase id of the read-time date nodes (above any stored phrase id)
DATE_ID_BASE = 1 << 62


def passage_dates(p: LinkPassage, session_date: bool) -> list[DateSpan]:
    """The calendar spans a passage names or implies: relative dates resolved against its
    session date (``p.date``; a leading ``"[<date>] "`` the eval writes is not read as a
    mention), absolute dates, and with ``session_date`` the session's day itself.

    Only a passage with a date of its own (``metadata["date"]``: a conversation turn, a
    dated note) gets date nodes. In an undated document the absolute dates are already
    phrase nodes of the extraction, and relative ones cannot be resolved: date nodes there
    only duplicate the extractor's date phrases (measured on MuSiQue-200: 0.5-1.4 points of
    R@5 lost, ``evals/lexical/README.md`` round 4).

    >>> p = LinkPassage(1, "[1:56 pm on 8 May, 2023] Caroline: I went yesterday.",
    ...                 date="1:56 pm on 8 May, 2023")
    >>> [s.key for s in passage_dates(p, False)], [s.key for s in passage_dates(p, True)]
    (['2023-05-07'], ['2023-05-07', '2023-05-08'])
    >>> passage_dates(LinkPassage(2, "Born on 8 May 1920 in Paris."), True)
    []
    """
    anchor = anchor_date(p.date) if p.date else None
    if anchor is None:
        return []
    text = p.text
    if p.date and text.startswith(f"[{p.date}]"):
        text = text[len(p.date) + 2:]
    spans = resolve(text, anchor)
    if session_date and day(anchor) not in spans:
        spans.append(day(anchor))
    return spans


def add_date_nodes(g: GraphArrays, dates: list[list[tuple[Any, DateSpan]]]) -> GraphArrays:
    """``g`` with a phrase node per distinct (group, span) of ``dates`` (one list per
    passage of ``g``, in ``g.passage_ids`` order) appended after its phrases, each joined
    to its passages by a context edge of weight 1; passage node indices shift by the number
    of date nodes, phrase indices do not."""
    keys = sorted({k for ds in dates for k in ds}, key=lambda k: (repr(k[0]), k[1]))
    if not keys:
        return g
    if len(g.phrase_ids) and int(g.phrase_ids.max()) >= DATE_ID_BASE:
        raise InvalidInput("phrase ids reach the date node ids")
    P, D, N = g.n_phrases, len(keys), len(g.passage_ids)
    index = {k: j for j, k in enumerate(keys)}
    pairs = np.array([(P + index[k], P + D + i) for i, ds in enumerate(dates) for k in ds],
                     dtype=np.int64).reshape(-1, 2)
    coo = g.adj.tocoo()

    def shift(x: np.ndarray) -> np.ndarray:
        return np.where(x >= P, x + D, x)

    rows = np.concatenate([shift(coo.row), pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([shift(coo.col), pairs[:, 1], pairs[:, 0]])
    vals = np.concatenate([coo.data, np.ones(2 * len(pairs))])
    n = P + D + N
    adj = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
    adj.sum_duplicates()
    adj.sort_indices()
    counts = np.bincount(pairs[:, 0] - P, minlength=D).astype(np.int64)
    link_edges = g.link_edges
    if link_edges is not None and len(link_edges):
        link_edges = link_edges.copy()
        link_edges[:, :2] = shift(link_edges[:, :2].astype(np.int64))
    return replace(g, phrase_ids=np.concatenate(
        [g.phrase_ids, DATE_ID_BASE + np.arange(D, dtype=np.int64)]), adj=adj,
        phrase_passages=np.concatenate([g.phrase_passages, counts]),
        link_edges=link_edges, date_nodes=tuple(span for _, span in keys))


class LinkedGraphs:
    """Linked arrays per (graph, settings); the link edges per graph are shared by settings
    that differ only in weights."""

    def __init__(self, size: int = 4) -> None:
        self._speakers: tuple[Any, dict[str, np.ndarray]] | None = None
        self._sessions: tuple[Any, GraphArrays, np.ndarray] | None = None
        self._dated: tuple[Any, GraphArrays, np.ndarray] | None = None
        #: per (item id, with the session day): its (group, span) list. An item's text and
        #: metadata never change under its id (an update is a new item), so a new graph
        #: generation resolves only the passages it has not seen
        self._spans: dict[tuple[int, bool], list[tuple[Any, DateSpan]]] = {}
        self._links: dict[tuple[Any, ...], Links] = {}
        self._graphs: dict[tuple[Any, ...], GraphArrays] = {}
        self._lock = threading.Lock()
        self.size = size

    def get(self, store: Store, g: GraphArrays, s: LinkSettings) -> GraphArrays:
        gkey = (g.generation, id(g), s)
        with self._lock:
            if gkey in self._graphs:
                return self._graphs[gkey]
        what = (s.mentions, s.title_weight > 0, s.alias_weight > 0,
                s.session_window if s.session_weight > 0 else -1)
        lkey = (g.generation, id(g), what)
        links = self._links.get(lkey)
        if links is None:
            links = self._build(store, g, what) if what != (False, False, False, -1) \
                else Links()
        linked = link_graph(g, links, s)
        if s.dates:  # spans are cached per passage: only new passages are resolved
            linked = add_date_nodes(
                linked, self.passage_spans(store, g.passage_ids, s.date_session))
        with self._lock:
            self._links[lkey] = links
            self._graphs[gkey] = linked
            for cache in (self._links, self._graphs):
                while len(cache) > self.size:
                    cache.pop(next(iter(cache)))
        return linked

    def speakers(self, store: Store, g: GraphArrays) -> dict[str, np.ndarray]:
        """Speaker name (normalised) -> the passage indices (into ``g.passage_ids``) of the
        turns they spoke (``metadata["speaker"]``), per graph generation."""
        key = (g.generation, id(g))
        held = self._speakers
        if held is not None and held[0] == key:
            return held[1]
        by: dict[str, list[int]] = {}
        index = {int(i): n for n, i in enumerate(g.passage_ids.tolist())}
        for p in read_passages(store, g.passage_ids):
            name = normalise_phrase(p.speaker) if p.speaker else ""
            if name:
                by.setdefault(name, []).append(index[p.id])
        out = {name: np.array(ix, dtype=np.int64) for name, ix in by.items()}
        self._speakers = (key, out)
        return out

    def dated(self, store: Store, g: GraphArrays) -> np.ndarray:
        """Per passage of ``g``: whether its text names or implies a date (resolved against
        its session date; the session date alone does not count); per graph generation."""
        held = self._dated
        if held is not None and held[0] == g.generation and held[1] is g:
            return held[2]
        out = np.array([bool(spans) for spans in
                        self.passage_spans(store, g.passage_ids, False)], dtype=bool)
        self._dated = (g.generation, g, out)
        return out

    def passage_spans(self, store: Store, ids: np.ndarray, session_date: bool
                      ) -> list[list[tuple[Any, DateSpan]]]:
        """Per id: the (group, span) pairs of :func:`passage_dates`, read from the record
        only for ids not resolved before."""
        todo = np.array([i for i in ids.tolist() if (int(i), session_date) not in self._spans],
                        dtype=np.int64)
        if len(todo):
            found = {p.id: [(p.group, span) for span in passage_dates(p, session_date)]
                     for p in read_passages(store, todo)}
            with self._lock:
                for i in todo.tolist():
                    self._spans[(int(i), session_date)] = found.get(int(i), [])
        return [self._spans.get((int(i), session_date), []) for i in ids.tolist()]

    def sessions(self, store: Store, g: GraphArrays) -> np.ndarray:
        """Per passage of ``g``: an int naming its (scope, conversation session), -1 for a
        passage of no session; per graph generation."""
        held = self._sessions
        if held is not None and held[0] == g.generation and held[1] is g:
            return held[2]
        keys: dict[tuple[Any, Any], int] = {}
        out = np.full(len(g.passage_ids), -1, dtype=np.int64)
        index = {int(i): n for n, i in enumerate(g.passage_ids.tolist())}
        for p in read_passages(store, g.passage_ids):
            if p.session is not None:
                out[index[p.id]] = keys.setdefault((p.group, p.session), len(keys))
        self._sessions = (g.generation, g, out)
        return out

    @staticmethod
    def _build(store: Store, g: GraphArrays, what: tuple[Any, ...]) -> Links:
        mentions, titles, aliases, window = what
        passages = read_passages(store, g.passage_ids)
        known = set(g.phrase_ids.tolist())
        phrases = {int(i): str(surf) for i, surf in store.conn.execute(
            "SELECT id, surface FROM hipporag_phrases") if int(i) in known}
        P = g.n_phrases
        ctx = g.adj[P:, :P].tocsr()
        mentioned = {int(g.passage_ids[r]): g.phrase_ids[
            ctx.indices[ctx.indptr[r]:ctx.indptr[r + 1]]].tolist()
            for r in range(len(g.passage_ids))} if mentions else {}
        return build_links(passages, phrases, mentioned, mentions=mentions, titles=titles,
                           aliases=aliases, session_window=window)
