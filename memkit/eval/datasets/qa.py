"""Multi-hop QA over passages: MuSiQue, HotpotQA / 2WikiMultihopQA (distractor), and any
``{question, answer, evidence}`` JSONL with a corpus file of the user's own.

The retrieval corpus is the union of every question's passages, deduplicated by (title, text)
-- the HippoRAG-style setting. A passage is written as ``f"{title}\\n{text}"`` with metadata
``{"title", "doc_id"}``; its evidence key is ``doc_key(title, text)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memkit.errors import InvalidInput
from memkit.eval.datasets.base import (
    CorpusBuilder,
    Dataset,
    Question,
    Record,
    doc_key,
    read_records,
)
from memkit.types import Scope


def _passage(corpus: CorpusBuilder, scope: Scope, title: str, text: str) -> str:
    key = doc_key(title, text)
    corpus.add(key, f"{title}\n{text}", scope, {"title": title, "doc_id": key})
    return key


def _str_answer(rec: Record, value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise rec.fail(where, f"expected a string answer, got {type(value).__name__}")
    return str(value)


def load_musique(path: Path, *, namespace: str = "musique") -> Dataset:
    """MuSiQue (published JSONL: ``id, question, answer, answer_aliases, paragraphs
    [{idx, title, paragraph_text, is_supporting}], question_decomposition``)."""
    scope = Scope(namespace=namespace)
    corpus = CorpusBuilder()
    questions: list[Question] = []
    for rec in read_records(path):
        qid = rec.get("id", str)
        question = rec.get("question", str)
        answer = _str_answer(rec, rec.get("answer", (str, int, float)), "answer")
        aliases = rec.get("answer_aliases", list, optional=True) or []
        for i, alias in enumerate(aliases):
            _str_answer(rec, alias, f"answer_aliases[{i}]")
        paragraphs = rec.get("paragraphs", list)
        if not paragraphs:
            raise rec.fail("paragraphs", "empty list")
        gold = []
        for i, par in enumerate(paragraphs):
            pre = f"paragraphs[{i}]."
            title = rec.get("title", str, within=par, prefix=pre)
            text = rec.get("paragraph_text", str, within=par, prefix=pre)
            supporting = rec.get("is_supporting", bool, within=par, prefix=pre, optional=True)
            key = _passage(corpus, scope, title, text)
            if supporting:
                gold.append(key)
        answerable = rec.get("answerable", bool, optional=True)
        decomposition = rec.get("question_decomposition", list, optional=True) or []
        questions.append(Question(
            id=qid, question=question, answers=(answer, *map(str, aliases)),
            evidence=tuple(dict.fromkeys(gold)), scope=scope,
            category=f"{len(decomposition)}hop" if decomposition else None,
            abstain=answerable is False, metadata={"hops": len(decomposition)}))
    return Dataset("musique", "musique", corpus.items(), questions,
                   {"source": str(path), "licence": "CC BY 4.0 (MuSiQue, Trivedi et al. 2022)",
                    "category_order": ["2hop", "3hop", "4hop"]})


def load_distractor(path: Path, *, fmt: str = "hotpotqa", namespace: str | None = None) -> Dataset:
    """HotpotQA or 2WikiMultihopQA in the published *distractor* format: a JSON list (or JSONL)
    of ``{_id, question, answer, context: [[title, [sentences]]], supporting_facts:
    [[title, sentence_id]]}`` (2Wiki adds ``type`` and ``evidences`` triples)."""
    if fmt not in ("hotpotqa", "2wikimultihopqa"):
        raise InvalidInput(f"unknown distractor format {fmt!r}")
    scope = Scope(namespace=namespace or fmt)
    corpus = CorpusBuilder()
    questions: list[Question] = []
    for n, rec in enumerate(read_records(path)):
        qid = rec.get("_id", str, optional=True) or rec.get("id", str, optional=True) or str(n)
        question = rec.get("question", str)
        answer = _str_answer(rec, rec.get("answer", (str, int, float)), "answer")
        context = rec.get("context", list)
        if not context:
            raise rec.fail("context", "empty list")
        by_title: dict[str, tuple[str, list[str]]] = {}
        for i, entry in enumerate(context):
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                    and isinstance(entry[1], list)):
                raise rec.fail(f"context[{i}]", "expected [title, [sentences]]")
            title, sentences = entry
            for j, s in enumerate(sentences):
                if not isinstance(s, str):
                    raise rec.fail(f"context[{i}][1][{j}]", f"expected a sentence string, got "
                                   f"{type(s).__name__}")
            text = "".join(sentences).strip() if fmt == "hotpotqa" else \
                " ".join(s.strip() for s in sentences)
            if not text:
                continue
            by_title[title] = (_passage(corpus, scope, title, text), sentences)
        facts = rec.get("supporting_facts", list)
        gold: list[str] = []
        for i, fact in enumerate(facts):
            if not (isinstance(fact, list) and len(fact) == 2 and isinstance(fact[0], str)
                    and isinstance(fact[1], int) and not isinstance(fact[1], bool)):
                raise rec.fail(f"supporting_facts[{i}]", "expected [title, sentence_id]")
            if fact[0] not in by_title:
                raise rec.fail(f"supporting_facts[{i}]", f"title {fact[0]!r} is not in context")
            gold.append(by_title[fact[0]][0])
        meta: dict[str, Any] = {}
        qtype = rec.get("type", str, optional=True)
        if fmt == "2wikimultihopqa":
            evidences = rec.get("evidences", list, optional=True)
            if evidences is not None:
                for i, ev in enumerate(evidences):
                    if not (isinstance(ev, list) and len(ev) == 3
                            and all(isinstance(x, str) for x in ev)):
                        raise rec.fail(f"evidences[{i}]",
                                       "expected [subject, relation, object]")
                meta["evidences"] = evidences
        if (level := rec.get("level", str, optional=True)) is not None:
            meta["level"] = level
        questions.append(Question(id=qid, question=question, answers=(answer,),
                                  evidence=tuple(dict.fromkeys(gold)), scope=scope,
                                  category=qtype, metadata=meta))
    licence = "CC BY-SA 4.0 (HotpotQA)" if fmt == "hotpotqa" else \
        "Apache-2.0 (2WikiMultihopQA)"
    return Dataset(fmt, fmt, corpus.items(), questions, {"source": str(path), "licence": licence})


def load_qa_jsonl(path: Path, corpus_path: Path | None, *, namespace: str = "custom") -> Dataset:
    """Users' own data: questions as JSONL ``{question, answer | answers, evidence, [id],
    [category], [scope]}`` and a corpus file (JSONL ``{id, text, [title], [scope],
    [metadata]}``, or plain text with one document per line, keyed by line number)."""
    if corpus_path is None:
        raise InvalidInput(f"{path}: a questions file needs a corpus file too (--corpus FILE): "
                           "JSONL of {id, text} or plain text, one document a line")
    default_scope = Scope(namespace=namespace)
    corpus = CorpusBuilder()
    if corpus_path.suffix in (".jsonl", ".json"):
        for rec in read_records(corpus_path):
            key = rec.get("id", (str, int))
            text = rec.get("text", str)
            title = rec.get("title", str, optional=True)
            meta = rec.get("metadata", dict, optional=True) or {}
            scope = _scope(rec, default_scope)
            full = f"{title}\n{text}" if title else text
            if str(key) in corpus:
                raise rec.fail("id", f"duplicate document id {key!r}")
            corpus.add(str(key), full, scope, {**meta, **({"title": title} if title else {}),
                                               "doc_id": str(key)})
    else:
        try:
            lines = corpus_path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InvalidInput(f"{corpus_path}: cannot read ({exc})") from exc
        for lineno, line in enumerate(lines, start=1):
            if line.strip():
                corpus.add(str(lineno), line.strip(), default_scope, {"doc_id": str(lineno)})
    questions = []
    for n, rec in enumerate(read_records(path)):
        question = rec.get("question", str)
        answers = rec.get("answers", list, optional=True)
        if answers is None:
            answer = rec.get("answer", (str, int, float), optional=True)
            answers = [] if answer is None else [answer]
        answers = [_str_answer(rec, a, f"answers[{i}]") for i, a in enumerate(answers)]
        evidence = rec.get("evidence", (list, str, int), optional=True) or []
        if not isinstance(evidence, list):
            evidence = [evidence]
        for i, ev in enumerate(evidence):
            if str(ev) not in corpus:
                raise rec.fail(f"evidence[{i}]", f"document id {ev!r} is not in {corpus_path}")
        qid = rec.get("id", (str, int), optional=True)
        category = rec.get("category", (str, int), optional=True)
        questions.append(Question(
            id=str(qid if qid is not None else n), question=question, answers=tuple(answers),
            evidence=tuple(str(e) for e in evidence), scope=_scope(rec, default_scope),
            category=None if category is None else str(category),
            abstain=bool(rec.get("abstain", bool, optional=True))))
    return Dataset(path.stem, "qa-jsonl", corpus.items(), questions,
                   {"source": str(path), "corpus": str(corpus_path)})


def _scope(rec: Record, default: Scope) -> Scope:
    raw = rec.get("scope", (dict, str), optional=True)
    if raw is None:
        return default
    try:
        scope = Scope.coerce(raw)
    except InvalidInput as exc:
        raise rec.fail("scope", str(exc)) from exc
    if isinstance(raw, dict) and "namespace" not in raw:
        scope = Scope(namespace=default.namespace, user=scope.user, agent=scope.agent,
                      session=scope.session)
    return scope
