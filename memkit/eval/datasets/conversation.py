"""Long conversational memory: LoCoMo and LongMemEval.

LoCoMo: each conversation is one scope (``Scope(namespace="locomo", user=sample_id)``); each
turn is one item written as ``"[<session date>] <speaker>: <text>"`` (plus the image caption
when the turn shares a photo) with metadata ``dia_id, speaker, session, date``; its evidence key
is ``"<sample_id>/<dia_id>"``. Questions are scoped to their conversation; category 5
(adversarial) has no gold answer and is scored as abstention.

LongMemEval: each question has its own haystack, so each question is one scope
(``user=question_id``). Items are sessions by default (``granularity="session"``: evidence =
``answer_session_ids``) or turns (``granularity="turn"``: evidence = turns with ``has_answer``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memkit.errors import InvalidInput
from memkit.eval.datasets.base import CorpusBuilder, Dataset, Question, Record, read_records
from memkit.types import Scope

LOCOMO_CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop",
                     5: "adversarial"}
_SESSION = re.compile(r"^session_(\d+)$")
_DIA = re.compile(r"^D:?(\d+):(\d+)$")
_LOCOMO_DATE_FORMATS = ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y")
_LME_DATE_FORMATS = ("%Y/%m/%d (%a) %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d")


def parse_date(text: str, formats: tuple[str, ...]) -> float | None:
    """Seconds since the epoch (UTC) for a dataset's date string, or None if unparseable.

    >>> parse_date("1:56 pm on 8 May, 2023", _LOCOMO_DATE_FORMATS)
    1683554160.0
    """
    for fmt in formats:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


def normalise_dia_ids(raw: str) -> list[str]:
    """LoCoMo evidence strings, repaired for the quirks of the published file
    (``"D8:6; D9:17"``, ``"D:11:26"``); unusable fragments (``"D"``) are dropped.

    >>> normalise_dia_ids("D8:6; D9:17"), normalise_dia_ids("D:11:26"), normalise_dia_ids("D")
    (['D8:6', 'D9:17'], ['D11:26'], [])
    """
    out = []
    for part in re.split(r"[;,\s]+", raw.strip()):
        m = _DIA.match(part)
        if m:
            out.append(f"D{int(m.group(1))}:{int(m.group(2))}")
    return out


def load_locomo(path: Path, *, namespace: str = "locomo") -> Dataset:
    """LoCoMo (``locomo10.json``): a JSON list of ``{sample_id, conversation, qa}``."""
    corpus = CorpusBuilder()
    questions: list[Question] = []
    repaired = dropped = unresolved = 0
    for rec in read_records(path):
        sample = str(rec.get("sample_id", (str, int)))
        conv = rec.get("conversation", dict)
        scope = Scope(namespace=namespace, user=sample)
        sessions = sorted((int(m.group(1)), k) for k in conv if (m := _SESSION.match(k)))
        if not sessions:
            raise rec.fail("conversation", "no session_N lists")
        last_date: float | None = None  # questions are asked after the last session
        for num, key in sessions:
            turns = rec.get(key, list, within=conv, prefix="conversation.")
            date = rec.get(f"{key}_date_time", str, within=conv, prefix="conversation.",
                           optional=True) or ""
            when = parse_date(date, _LOCOMO_DATE_FORMATS) if date else None
            if when is not None:
                last_date = when if last_date is None else max(last_date, when)
            for i, turn in enumerate(turns):
                pre = f"conversation.{key}[{i}]."
                speaker = rec.get("speaker", str, within=turn, prefix=pre)
                dia_id = rec.get("dia_id", str, within=turn, prefix=pre)
                text = rec.get("text", str, within=turn, prefix=pre)
                caption = rec.get("blip_caption", str, within=turn, prefix=pre, optional=True)
                body = f"[{date}] {speaker}: {text}" if date else f"{speaker}: {text}"
                if caption:
                    body += f" [shares a photo: {caption}]"
                corpus.add(f"{sample}/{dia_id}", body, scope,
                           {"dia_id": dia_id, "speaker": speaker, "session": num, "date": date},
                           created_at=when)
        for i, qa in enumerate(rec.get("qa", list)):
            pre = f"qa[{i}]."
            question = rec.get("question", str, within=qa, prefix=pre)
            cat = rec.get("category", int, within=qa, prefix=pre)
            if cat not in LOCOMO_CATEGORIES:
                raise rec.fail(f"{pre}category", f"expected 1-5, got {cat}")
            evidence: list[str] = []
            for j, ev in enumerate(rec.get("evidence", list, within=qa, prefix=pre)):
                if not isinstance(ev, str):
                    raise rec.fail(f"{pre}evidence[{j}]", "expected a dia_id string")
                ids = normalise_dia_ids(ev)
                if ids != [ev]:
                    repaired += bool(ids)
                    dropped += not ids
                for d in ids:
                    if f"{sample}/{d}" not in corpus:
                        unresolved += 1
                    evidence.append(f"{sample}/{d}")
            abstain = cat == 5
            answer = qa.get("answer")
            if not abstain and answer is None:
                raise rec.fail(f"{pre}answer", "missing (only category 5 may omit it)")
            meta: dict[str, Any] = {"sample_id": sample, "question_date": last_date}
            if abstain and "adversarial_answer" in qa:
                meta["adversarial_answer"] = str(qa["adversarial_answer"])
            questions.append(Question(
                id=f"{sample}/q{i}", question=question,
                answers=() if abstain else (str(answer),),
                evidence=tuple(dict.fromkeys(evidence)), scope=scope,
                category=LOCOMO_CATEGORIES[cat], abstain=abstain, metadata=meta))
    notes = {"evidence_repaired": repaired, "evidence_dropped": dropped,
             "evidence_unresolved": unresolved}
    return Dataset("locomo", "locomo", corpus.items(), questions,
                   {"source": str(path), "licence": "CC BY-NC 4.0 (LoCoMo, Maharana et al. 2024)",
                    "category_order": list(LOCOMO_CATEGORIES.values()), **notes})


def load_longmemeval(path: Path, *, namespace: str = "longmemeval",
                     granularity: str = "session") -> Dataset:
    """LongMemEval (``longmemeval_s/m/oracle.json``): a JSON list of ``{question_id,
    question_type, question, answer, question_date, haystack_session_ids, haystack_dates,
    haystack_sessions: [[{role, content, has_answer?}]], answer_session_ids}``.
    Question ids ending in ``_abs`` are abstention questions."""
    if granularity not in ("session", "turn"):
        raise InvalidInput(f"granularity must be 'session' or 'turn', got {granularity!r}")
    corpus = CorpusBuilder()
    questions: list[Question] = []
    for rec in read_records(path):
        qid = str(rec.get("question_id", (str, int)))
        qtype = rec.get("question_type", str)
        question = rec.get("question", str)
        answer = rec.get("answer", (str, int, float))
        qdate = rec.get("question_date", str, optional=True)
        sids = rec.get("haystack_session_ids", list)
        dates = rec.get("haystack_dates", list)
        sessions = rec.get("haystack_sessions", list)
        if not len(sids) == len(dates) == len(sessions):
            raise rec.fail("haystack_sessions", f"haystack_session_ids ({len(sids)}), "
                           f"haystack_dates ({len(dates)}) and haystack_sessions "
                           f"({len(sessions)}) differ in length")
        gold_sessions = [str(s) for s in rec.get("answer_session_ids", list)]
        scope = Scope(namespace=namespace, user=qid)
        evidence: list[str] = []
        for s, (sid, date, turns) in enumerate(zip(sids, dates, sessions, strict=True)):
            if not isinstance(sid, (str, int)) or not isinstance(date, str):
                raise rec.fail(f"haystack_session_ids[{s}]", "expected string id and date")
            if not isinstance(turns, list):
                raise rec.fail(f"haystack_sessions[{s}]", "expected a list of turns")
            when = parse_date(date, _LME_DATE_FORMATS)
            lines, answer_turns = [], []
            for t, turn in enumerate(turns):
                pre = f"haystack_sessions[{s}][{t}]."
                role = rec.get("role", str, within=turn, prefix=pre)
                content = rec.get("content", str, within=turn, prefix=pre)
                has_answer = rec.get("has_answer", bool, within=turn, prefix=pre, optional=True)
                lines.append(f"{role}: {content}")
                if granularity == "turn" and content.strip():
                    key = f"{qid}/{sid}#{t}"
                    corpus.add(key, f"[{date}] {role}: {content}", scope,
                               {"session_id": str(sid), "turn": t, "date": date,
                                "role": role}, created_at=when)
                    if has_answer:
                        answer_turns.append(key)
            if granularity == "session" and lines:
                corpus.add(f"{qid}/{sid}", f"[{date}]\n" + "\n".join(lines), scope,
                           {"session_id": str(sid), "date": date}, created_at=when)
                if str(sid) in gold_sessions:
                    evidence.append(f"{qid}/{sid}")
            evidence.extend(answer_turns)
        abstain = qid.endswith("_abs")
        questions.append(Question(
            id=qid, question=question, answers=() if abstain else (str(answer),),
            evidence=tuple(dict.fromkeys(evidence)), scope=scope, category=qtype,
            abstain=abstain, metadata={"question_date": qdate,
                                       **({"expected": str(answer)} if abstain else {})}))
    return Dataset("longmemeval", "longmemeval", corpus.items(), questions,
                   {"source": str(path), "granularity": granularity,
                    "licence": "MIT (LongMemEval, Wu et al. 2024)"})


__all__ = ["LOCOMO_CATEGORIES", "Record", "load_locomo", "load_longmemeval",
           "normalise_dia_ids", "parse_date"]
