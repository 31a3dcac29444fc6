"""Time-aware reads: a time expression resolved against the question's date re-ranks hits
by event time (boost), or keeps only those in the window (filter)."""

from __future__ import annotations

import pytest
from pgtools import memory_target

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.errors import InvalidInput
from memkit.temporal.query import TimeAware, resolve_window

pytest.importorskip("dateparser", reason="time-aware reads need the [temporal] extra")

EVENTS = [("Ann went hiking with Tom.", "2023-03-10"),
          ("Ann went hiking with Lea.", "2023-05-12"),
          ("Ann went hiking with Bob.", "2023-07-20"),
          ("Ann went hiking with Zoe.", "2022-05-02")]


@pytest.mark.parametrize(("query", "period", "start", "end"), [
    ("What did Ann do in May 2023?", "month", "2023-05-01", "2023-06-01"),
    ("What did Ann do last week?", "week", "2023-07-24", "2023-07-31"),
    ("What did Ann do yesterday?", "day", "2023-07-31", "2023-08-01"),
    ("What did Ann do on May 3, 2023?", "day", "2023-05-03", "2023-05-04"),
    ("Where was Ann in 2022?", "year", "2022-01-01", "2023-01-01"),
    ("What did Ann do in June?", "month", "2023-06-01", "2023-07-01"),
])
def test_windows_resolve_against_the_question_date(query: str, period: str, start: str,
                                                   end: str) -> None:
    w = resolve_window(query, reference="2023-08-01T12:00:00Z")
    assert w is not None and (w.period, w.start_iso, w.end_iso) == (period, start, end)


@pytest.mark.parametrize("query", ["Who may join Ann?", "How old was she on her 18th?",
                                   "Where does Ann live?"])
def test_no_window_without_a_date(query: str) -> None:
    assert resolve_window(query, reference="2023-08-01") is None


def _mem() -> Memory:
    mem = Memory.open(memory_target(), embedder=HashEmbedder(dim=64))
    for text, when in EVENTS:
        mem.write(text, event_from=when)
    return mem


def test_boost_moves_hits_of_the_window_first_and_filter_keeps_only_them() -> None:
    with _mem() as mem:
        q = "Who did Ann go hiking with in May 2023?"
        plain = mem.read(q, k=4)
        ref = {"reference": "2023-08-01"}
        boosted = mem.read(q, k=4, time_aware=ref)
        assert sorted(boosted.ids) == sorted(plain.ids)
        assert boosted[0].text == "Ann went hiking with Lea."
        assert boosted.traces["time"]["window"]["start"] == "2023-05-01"
        assert boosted.traces["time"]["in_window"] == 1
        only = mem.read(q, k=4, time_aware={**ref, "mode": "filter"})
        assert [h.text for h in only] == ["Ann went hiking with Lea."]
        # "in May" without a year: the May before the question date
        may = mem.read("Who did Ann go hiking with in May?", k=4,
                       time_aware={"reference": "2022-12-01", "mode": "filter"})
        assert [h.text for h in may] == ["Ann went hiking with Zoe."]


def test_no_time_expression_keeps_the_order_and_recency_prior_prefers_recent() -> None:
    with _mem() as mem:
        q = "Who did Ann go hiking with?"
        assert mem.read(q, k=4, time_aware=True).ids == mem.read(q, k=4).ids
        recent = mem.read(q, k=4, time_aware={"reference": "2023-08-01", "half_life_days": 7,
                                              "recency_weight": 100})
        assert recent[0].text == "Ann went hiking with Bob."


def test_bad_knobs_are_named() -> None:
    with pytest.raises(InvalidInput, match="mode"):
        TimeAware.coerce({"mode": "sometimes"})
    with pytest.raises(InvalidInput, match="unknown time_aware option"):
        TimeAware.coerce({"window": 3})
    with pytest.raises(InvalidInput, match="time_aware.reference"):
        TimeAware.coerce({"reference": "2023-02-30"})
