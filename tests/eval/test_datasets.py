"""Loaders on small fixtures in the published formats, and their strictness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memkit.errors import InvalidInput, NotFound
from memkit.eval.datasets import KNOWN, detect_format, doc_key, generate_ruler, load_dataset
from memkit.eval.datasets.ruler import RulerConfig
from memkit.types import Scope

FIX = Path(__file__).parent / "fixtures"


def test_musique_sample_corpus_and_gold() -> None:
    ds = load_dataset("musique-sample")
    assert ds.format == "musique" and len(ds.questions) == 30
    # union of paragraphs deduplicated by (title, text); each item is "title\ntext"
    lines = (Path(ds.info["source"])).read_text().splitlines()
    pairs = {(p["title"], p["paragraph_text"])
             for ln in lines for p in json.loads(ln)["paragraphs"]}
    assert len(ds.corpus) == len(pairs)
    first = json.loads(lines[0])
    q = ds.questions[0]
    assert q.id == first["id"] and q.answers[0] == first["answer"]
    assert set(q.answers[1:]) == set(first["answer_aliases"])
    gold = [doc_key(p["title"], p["paragraph_text"]) for p in first["paragraphs"]
            if p["is_supporting"]]
    assert list(q.evidence) == gold
    item = next(c for c in ds.corpus if gold[0] in c.keys)
    title = item.metadata["title"]
    assert item.text.startswith(f"{title}\n") and item.metadata["doc_id"] == gold[0]
    assert q.category == "2hop" and q.scope == Scope(namespace="musique")


def test_locomo_sample_scopes_categories_and_abstention() -> None:
    ds = load_dataset("locomo-sample")
    assert len(ds.corpus) == 108 and len(ds.questions) == 38
    scope = Scope(namespace="locomo", user="conv-26")
    assert all(c.scope == scope for c in ds.corpus) and all(q.scope == scope for q in ds.questions)
    turn = next(c for c in ds.corpus if c.keys == ("conv-26/D1:3",))
    assert turn.text.startswith("[1:56 pm on 8 May, 2023] Caroline: ")
    assert turn.metadata["dia_id"] == "D1:3" and turn.metadata["session"] == 1
    assert turn.created_at == 1683554160.0
    q0 = ds.questions[0]
    assert q0.category == "temporal" and q0.evidence == ("conv-26/D1:3",)
    adversarial = [q for q in ds.questions if q.category == "adversarial"]
    assert len(adversarial) == 8 and all(q.abstain and q.answers == () for q in adversarial)
    assert all(not q.abstain for q in ds.questions if q.category != "adversarial")
    # every gold turn is in the corpus
    keys = {k for c in ds.corpus for k in c.keys}
    assert all(e in keys for q in ds.questions for e in q.evidence)


def test_locomo_evidence_quirks_are_repaired(tmp_path: Path) -> None:
    sample = json.loads((FIX.parent.parent.parent / "evals/samples/locomo_sample.json")
                        .read_text())
    sample[0]["qa"] = [{"question": "q?", "answer": "a", "category": 1,
                        "evidence": ["D1:3; D1:5", "D:1:7", "D"]}]
    path = tmp_path / "l.json"
    path.write_text(json.dumps(sample))
    ds = load_dataset(path)
    assert ds.questions[0].evidence == ("conv-26/D1:3", "conv-26/D1:5", "conv-26/D1:7")
    assert ds.info["evidence_repaired"] == 2 and ds.info["evidence_dropped"] == 1


def test_hotpotqa_distractor() -> None:
    path = FIX / "hotpot_distractor.json"
    assert detect_format(path) == "hotpotqa"
    ds = load_dataset(path)
    # "Ed Wood" appears in both questions' contexts with the same text: one item
    assert len(ds.corpus) == 5
    q0, q1 = ds.questions
    ed_wood = doc_key("Ed Wood", "Edward Davis Wood Jr. (October 10, 1924 – December 10, "
                                 "1978) was an American filmmaker, actor, writer, producer, "
                                 "and director.")
    assert q0.evidence == (doc_key("Scott Derrickson", "Scott Derrickson (born July 16, 1966) "
                                   "is an American director, screenwriter and producer. He "
                                   "lives in Los Angeles, California."), ed_wood)
    assert len(q1.evidence) == 2  # two facts from Shirley Temple count as one passage
    assert q0.answers == ("yes",) and q0.category == "comparison"
    assert q0.metadata["level"] == "hard" and q0.id == "5a8b57f25542995d1e6f1371"


def test_2wiki_distractor() -> None:
    path = FIX / "2wiki_dev.json"
    assert detect_format(path) == "2wikimultihopqa"
    ds = load_dataset(path)
    q = ds.questions[0]
    assert q.answers == ("Małgorzata Braunek",) and q.category == "compositional"
    assert len(q.evidence) == 2 and q.metadata["evidences"][1][1] == "mother"
    item = next(c for c in ds.corpus if c.metadata["title"] == "Xawery Żuławski")
    assert item.text == ("Xawery Żuławski\nXawery Żuławski (born 22 December 1971 in Warsaw) is "
                         "a Polish film director. He is the son of actress Małgorzata Braunek "
                         "and director Andrzej Żuławski.")


def test_longmemeval_session_and_turn_granularity() -> None:
    path = FIX / "longmemeval_s.json"
    assert detect_format(path) == "longmemeval"
    ds = load_dataset(path)
    q, q_abs = ds.questions
    assert q.scope == Scope(namespace="longmemeval", user="e47becba")
    assert q.evidence == ("e47becba/answer_280352e9",) and q.category == "single-session-user"
    assert len(ds.corpus) == 4  # two sessions per question, one scope per question
    session = next(c for c in ds.corpus if c.keys == ("e47becba/answer_280352e9",))
    assert session.text.startswith("[2023/05/22 (Mon) 10:15]\nuser: I graduated")
    assert q_abs.abstain and q_abs.answers == ()
    turns = load_dataset(path, options={"granularity": "turn"})
    assert turns.questions[0].evidence == ("e47becba/answer_280352e9#0",)
    assert turns.questions[1].evidence == ()  # has_answer false everywhere
    assert len(turns.corpus) == 8


def test_custom_jsonl_with_corpus() -> None:
    ds = load_dataset(FIX / "custom_questions.jsonl", corpus=FIX / "custom_corpus.jsonl")
    assert ds.format == "qa-jsonl" and len(ds.corpus) == 5
    q1, q2, q3 = ds.questions
    assert q1.scope == Scope(namespace="custom", user="alice") and q1.evidence == ("d1",)
    assert q2.answers == ("Berlin", "the German capital") and q3.category == "pets"
    with pytest.raises(InvalidInput, match="needs a corpus file"):
        load_dataset(FIX / "custom_questions.jsonl")


def test_custom_jsonl_unknown_evidence_names_line(tmp_path: Path) -> None:
    qs = tmp_path / "q.jsonl"
    qs.write_text('{"question": "a?", "answer": "b", "evidence": ["d1"]}\n'
                  '{"question": "c?", "answer": "d", "evidence": ["nope"]}\n')
    with pytest.raises(InvalidInput, match=r"q\.jsonl:2: field 'evidence\[0\]'.*'nope'"):
        load_dataset(qs, corpus=FIX / "custom_corpus.jsonl")


# ---- strictness -----------------------------------------------------------------------------
def _musique_line(**over: object) -> dict:
    rec = {"id": "x", "question": "q?", "answer": "a", "answer_aliases": [],
           "paragraphs": [{"idx": 0, "title": "T", "paragraph_text": "p", "is_supporting": True}],
           "question_decomposition": []}
    rec.update(over)
    return rec


def test_malformed_musique_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    bad = _musique_line(paragraphs=[{"idx": 0, "paragraph_text": "p"}])
    path.write_text(json.dumps(_musique_line()) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(InvalidInput) as err:
        load_dataset(path)
    assert f"{path}:2: field 'paragraphs[0].title': missing" in str(err.value)
    path.write_text(json.dumps(_musique_line(answer=["a"])) + "\n")
    with pytest.raises(InvalidInput, match=r"bad\.jsonl:1: field 'answer': expected"):
        load_dataset(path)
    path.write_text(json.dumps(_musique_line()) + "\n{not json\n")
    with pytest.raises(InvalidInput, match=r"bad\.jsonl:2: invalid JSON"):
        load_dataset(path)


def test_malformed_json_list_names_record_line(tmp_path: Path) -> None:
    records = json.loads((FIX / "hotpot_distractor.json").read_text())
    records[1]["supporting_facts"][0] = ["Not In Context", 0]
    path = tmp_path / "h.json"
    path.write_text(json.dumps(records, indent=1))
    starts = [i for i, ln in enumerate(path.read_text().splitlines(), 1) if ln == " {"]
    second_line = starts[1]
    with pytest.raises(InvalidInput) as err:
        load_dataset(path, format="hotpotqa")
    assert f"{path}:{second_line}: field 'supporting_facts[0]'" in str(err.value)
    records[1]["supporting_facts"][0] = ["Shirley Temple", "zero"]
    path.write_text(json.dumps(records, indent=1))
    with pytest.raises(InvalidInput, match="expected \\[title, sentence_id\\]"):
        load_dataset(path, format="hotpotqa")
    # a distractor file forced onto the wrong format fails on the first missing field
    with pytest.raises(InvalidInput, match=r"hotpot_distractor\.json:2: field 'id': missing"):
        load_dataset(FIX / "hotpot_distractor.json", format="musique")


def test_longmemeval_length_mismatch(tmp_path: Path) -> None:
    records = json.loads((FIX / "longmemeval_s.json").read_text())
    records[0]["haystack_dates"].pop()
    path = tmp_path / "lme.json"
    path.write_text(json.dumps(records))
    with pytest.raises(InvalidInput, match=r"lme\.json:1: field 'haystack_sessions'.*differ"):
        load_dataset(path)


def test_unknown_name_and_undetectable_format(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as err:
        load_dataset("musqiue")
    for name in ("musique", "locomo", "ruler-single"):
        assert name in str(err.value)
    path = tmp_path / "odd.jsonl"
    path.write_text('{"foo": 1}\n')
    with pytest.raises(InvalidInput, match="cannot tell the format.*--format"):
        load_dataset(path)
    with pytest.raises(NotFound, match="does not exist"):
        load_dataset(tmp_path / "missing.jsonl")
    assert set(KNOWN) >= {"musique", "locomo", "musique-sample", "locomo-sample"}


# ---- RULER-style generator ------------------------------------------------------------------
def test_ruler_is_deterministic_and_needles_are_gold() -> None:
    a = generate_ruler(RulerConfig(variant="multikey", samples=3, length=600, seed=7))
    b = generate_ruler(RulerConfig(variant="multikey", samples=3, length=600, seed=7))
    c = generate_ruler(RulerConfig(variant="multikey", samples=3, length=600, seed=8))
    assert a.corpus_hash() == b.corpus_hash() and a.corpus_hash() != c.corpus_hash()
    by_key = {k: item for item in a.corpus for k in item.keys}
    for q in a.questions:
        key = q.question.split(" for ")[1].rstrip("?")
        (gold,) = q.evidence
        assert f"special magic numbers for {key} is: {q.answers[0]}." in by_key[gold].text
        # the other keys are distractors elsewhere in the same scope
        assert sum("special magic numbers" in c.text for c in a.corpus
                   if c.scope == q.scope) >= 1


def test_ruler_depths_and_variants() -> None:
    start = generate_ruler(RulerConfig(variant="single", samples=1, length=1000,
                                       chunk_words=100, depths=(0.0,)))
    end = generate_ruler(RulerConfig(variant="single", samples=1, length=1000,
                                     chunk_words=100, depths=(1.0,)))
    assert start.questions[0].evidence == ("single-0/c0",)
    last = max(int(k.rsplit("c", 1)[1]) for item in end.corpus for k in item.keys)
    assert end.questions[0].evidence == (f"single-0/c{last}",)
    mv = generate_ruler(RulerConfig(variant="multivalue", samples=1, n_values=3,
                                    depths=(0.1, 0.5, 0.9), length=3000))
    assert len(mv.questions[0].evidence) == 3 and len(mv.questions[0].answers[0].split()) == 3
    vt = generate_ruler(RulerConfig(variant="vt", samples=1, hops=3))
    text = " ".join(c.text for c in vt.corpus)
    chain = vt.questions[0].answers[0].split()
    assert f"VAR {chain[1]} = VAR {chain[0]}." in text and len(chain) == 3
    with pytest.raises(InvalidInput, match="unknown RULER variant"):
        RulerConfig(variant="nope")
    with pytest.raises(InvalidInput, match="unknown RULER option"):
        load_dataset("ruler-single", options={"colour": 1})
    ds = load_dataset("ruler-single", options={"samples": "2", "depths": "0.2,0.8"})
    assert len(ds.questions) == 2 and ds.questions[1].metadata["depths"] == [0.8]


def test_limit_keeps_only_visible_corpus() -> None:
    ds = load_dataset(FIX / "longmemeval_s.json").limit(1)
    assert len(ds.questions) == 1 and len(ds.corpus) == 2
    assert all(c.scope.user == "e47becba" for c in ds.corpus)
