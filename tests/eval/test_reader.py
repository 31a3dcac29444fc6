"""The one-shot reader: prompt layout, answer parsing, abstention, context budget, cost."""

from __future__ import annotations

import pytest

from memkit.fusion import approx_tokens
from memkit.generate.reader import answer_from_hits, build_prompt, format_hit, parse_answer
from memkit.llm.fake import ScriptedLLM
from memkit.types import Hit, MemoryItem, ReadResult, Scope


def _hit(iid: int, text: str, **meta: object) -> Hit:
    item = MemoryItem(id=iid, text=text, scope=Scope(), source=None, created_at=0.0,
                      confidence=1.0, expires_at=None, metadata=dict(meta), content_hash="h")
    return Hit(item=item, score=1.0, backend="dense", rank=iid)


def test_blocks_titled_and_plain() -> None:
    titled = _hit(1, "John Lennon\nJohn Lennon co-founded the Beatles.", title="John Lennon")
    assert format_hit(titled) == "Wikipedia Title: John Lennon\nJohn Lennon co-founded the Beatles."
    plain = _hit(2, "[8 May 2023] Caroline: I went to a support group.", dia_id="D1:3")
    assert format_hit(plain) == "[8 May 2023] Caroline: I went to a support group."
    messages = build_prompt("Who?", [titled, plain])
    assert messages[0]["role"] == "system" and "No Answer" in messages[0]["content"]
    assert messages[1]["content"].endswith("Thought:")  # the one-shot example
    assert messages[2]["content"].strip().endswith("Answer: the Beatles")
    last = messages[-1]["content"]
    assert last.startswith("Wikipedia Title: John Lennon\n")
    assert last.endswith("Question: Who?\nThought:")
    assert len(build_prompt("Who?", [plain], one_shot=False)) == 2


@pytest.mark.parametrize("raw, text, abstained", [
    ("Thought: Lennon co-founded them.\nAnswer: the Beatles.", "the Beatles", False),
    ("Answer: **Paris**", "Paris", False),
    ("answer:   1984\nextra line", "1984", False),
    ("Paris", "Paris", False),
    ("Thought: not there.\nAnswer: No Answer", "No Answer", True),
    ("Answer: I don't know.", "I don't know", True),
    ("Answer: The passages do not mention it.", "The passages do not mention it", True),
    ("Answer: unknown", "unknown", True),
    ("", "", True),
    ("Answer: Nonesuch Records", "Nonesuch Records", False),
])
def test_parse_answer(raw: str, text: str, abstained: bool) -> None:
    assert parse_answer(raw) == (text, abstained)


def test_answer_from_hits_cost_and_budget() -> None:
    llm = ScriptedLLM({r"Question: Which band": "Thought: ok.\nAnswer: the Beatles"})
    hits = [_hit(i, f"Title {i}\n" + "word " * 50, title=f"Title {i}") for i in range(1, 5)]
    result = ReadResult("Which band?", hits)
    full = answer_from_hits(llm, "Which band?", result)
    assert full.text == "the Beatles" and not full.abstained
    assert full.cited_ids == [1, 2, 3, 4]
    assert full.context_tokens == sum(approx_tokens(format_hit(h)) for h in hits)
    assert full.cost.llm_calls == 1 and full.cost.prompt_tokens > full.context_tokens
    assert full.cost.completion_tokens > 0
    one_block = approx_tokens(format_hit(hits[0]))
    trimmed = answer_from_hits(llm, "Which band?", result, max_context_tokens=2 * one_block + 1)
    assert trimmed.cited_ids == [1, 2] and trimmed.context_tokens == 2 * one_block
    assert "Title 3" not in llm.calls[-1].prompt
    # a budget below one block still gives the reader the best hit
    assert answer_from_hits(llm, "Which band?", result, max_context_tokens=1).cited_ids == [1]
    assert llm.calls[-1].params.temperature == 0


def test_reader_uses_compact_evidence_and_abstains_without_hits() -> None:
    from memkit.store.sqlite import content_hash

    item = MemoryItem(id=7, text="Title\nA long passage that should not be shown.",
                      scope=Scope(), source=None, created_at=0.0, confidence=1.0,
                      expires_at=None, metadata={"title": "Title"},
                      content_hash=content_hash("x"))
    rendered = "Q: Who wrote Dune? A: Frank Herbert"
    fused = Hit(item=item, score=1.0, backend="panini+dense",
                evidence={"panini": {"rendered": rendered, "rank": 1}, "dense": {"rank": 3}})
    llm = ScriptedLLM({r"Who wrote": "Thought: the chain says so.\nAnswer: Frank Herbert"})
    ans = answer_from_hits(llm, "Who wrote Dune?", ReadResult("Who wrote Dune?", [fused]))
    prompt = llm.calls[0].prompt
    assert rendered in prompt and "should not be shown" not in prompt
    assert ans.text == "Frank Herbert" and ans.context_tokens == approx_tokens(rendered)
    empty = answer_from_hits(llm, "Who wrote Dune?", ReadResult("Who wrote Dune?", []))
    assert empty.abstained and empty.text == "No Answer" and len(llm.calls) == 1
