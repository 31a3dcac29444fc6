"""The LLM-free extractor with spaCy (the ``[nlp]`` extra): NER entities and subject-verb-object
relations from the dependency parse.

Per passage (the title line is split off, :func:`memkit.nlp.split_title`, and is an entity):

* entities: NER spans (numbers, percentages, money and quantities left out; dates kept when
  they contain a digit), proper-noun chunks the NER missed, and n-grams that are already
  phrase nodes of the graph;
* relations, per sentence: for each subject (``nsubj``/``nsubjpass``) its verb and the verb's
  conjuncts; objects are ``dobj``/``attr``/``oprd``/``dative`` children and prepositional
  objects (``built in 1914`` -> predicate "built in"); an object that is not an entity but
  carries a prepositional entity is folded into the predicate (``is the capital of X`` ->
  ("Port Blair", "is capital of", "X")). Subject and object are expanded to their entity;
  a pronoun subject resolves to the passage title. With ``noun_phrases=True`` plain noun
  chunks may be arguments too (more, noisier phrase nodes);
* with ``cooccurrence=True`` (default), entities of a sentence not linked by the parse are
  linked to the sentence's first entity (predicate = the words between, as in
  :mod:`~memkit.backends.hipporag.extract_rules`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memkit.backends.hipporag.extract_rules import _known_spans, _merge, _Span
from memkit.backends.hipporag.extraction import (
    Extraction,
    KnownPhrases,
    clean_entities,
    clean_triples,
)
from memkit.nlp import DEFAULT_SPACY_MODEL, load_spacy, split_title
from memkit.nlp.pool import UNUSED_PIPES, worker_count
from memkit.nlp.prefetch import ParsePrefetcher

_SKIP_LABELS = frozenset({"CARDINAL", "ORDINAL", "PERCENT", "QUANTITY", "MONEY"})
_SUBJ = frozenset({"nsubj", "nsubjpass"})
_OBJ = frozenset({"dobj", "attr", "oprd", "dative"})
_PRONOUNS = frozenset("it he she they its his her their this these him them".split())
_LEADING_DROP = frozenset({"the", "a", "an"})


class SpacyExtractor:
    """NER + dependency-parse relations. ``parse(texts)`` may be replaced (the benchmark feeds
    cached parses); ``extract_doc(title, doc, known)`` works on one parsed body.

    ``n_process``: worker processes for parsing (spaCy's ``nlp.pipe(n_process=...)``); None =
    one per CPU core (at most 4); default 1. Workers are a pool of *spawned* processes
    (:mod:`memkit.nlp.pool`, shared in the process; spawned, not forked, so calling from any
    thread of a multi-threaded process is safe - spaCy's own ``n_process`` forks) started on
    the first call of at least ``parallel_min`` texts; they parse, the extraction itself runs
    here. Smaller calls parse in this process. With one process, :meth:`prefetch` still parses
    ahead in one worker, which HippoRAG's prepare uses to overlap parsing with embedding.
    """

    name = "spacy"

    def __init__(self, model: str = DEFAULT_SPACY_MODEL, *, noun_phrases: bool = False,
                 cooccurrence: bool = True, batch_size: int = 32,
                 max_predicate_words: int = 8, n_process: int | None = 1,
                 parallel_min: int = 256) -> None:
        self.model = model
        self.noun_phrases = noun_phrases
        self.cooccurrence = cooccurrence
        self.batch_size = batch_size
        self.max_predicate_words = max_predicate_words
        self.n_process = worker_count(n_process)
        self.parallel_min = parallel_min
        self._nlp: Any = None
        self._ahead = ParsePrefetcher(model, UNUSED_PIPES, self.n_process)

    def cache_key(self) -> str:
        """What the extractions depend on besides the text (:mod:`memkit.ingest.extractions`):
        the settings, the spaCy and model versions and this extraction code."""
        from memkit.backends.hipporag import extract_rules, extraction
        from memkit.ingest.extractions import code_fingerprint, settings_key, spacy_versions
        from memkit.nlp import text

        return settings_key(
            extractor=self.name, noun_phrases=self.noun_phrases, cooccurrence=self.cooccurrence,
            max_predicate_words=self.max_predicate_words, versions=spacy_versions(self.model),
            code=code_fingerprint(__file__, extract_rules.__file__, extraction.__file__,
                                  text.__file__))

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            # only what extract_doc reads runs: tok2vec, tagger + attribute_ruler (pos_),
            # parser (dep_, sents, noun_chunks), ner (ents); names a model lacks are ignored
            self._nlp = load_spacy(self.model, disable=list(UNUSED_PIPES))
        return self._nlp

    def parse(self, bodies: Sequence[str]) -> list[Any]:
        return self._ahead.parse(bodies, self.nlp, self.batch_size, self.parallel_min)

    def prefetch(self, texts: Sequence[str]) -> None:
        """Start parsing ``texts`` now in the worker processes: a later :meth:`extract` of
        these texts (or some of them) finds the parses ready, so the caller overlaps parsing
        with its other work (``write_many`` parses a group while it embeds the group's
        passages; HippoRAG's prepare, the next sub-batch while it embeds this one's phrases).
        Texts already asked for are not parsed twice
        (:class:`~memkit.nlp.prefetch.ParsePrefetcher`)."""
        self._ahead.ahead([split_title(t)[1] for t in texts], self.batch_size)

    def close(self) -> None:
        """Drop pending prefetches. The worker processes belong to the process-wide pool
        shared by every extractor and parse writer with the same settings (another memory
        may be using them): they stop at exit or with :func:`memkit.nlp.pool.close_pools`."""
        self._ahead.clear()

    def extract(self, texts: Sequence[str], known: KnownPhrases | None = None
                ) -> list[Extraction]:
        split = [split_title(t) for t in texts]
        docs = self.parse([body for _, body in split])
        out = []
        for (title, _), doc in zip(split, docs, strict=True):
            try:
                out.append(self.extract_doc(title, doc, known))
            except Exception as exc:  # a parser corner case must not fail the batch
                out.append(Extraction(error=f"spacy extraction failed: {exc!r}"))
        return out

    # ---- one document ---------------------------------------------------------------------
    def _entity_spans(self, doc: Any) -> list[Any]:
        spans = []
        for ent in doc.ents:
            if ent.label_ in _SKIP_LABELS:
                continue
            if ent.label_ in ("DATE", "TIME") and not any(c.isdigit() for c in ent.text):
                continue
            while len(ent) > 1 and ent[0].lower_ in _LEADING_DROP:
                ent = ent[1:]
            spans.append(ent)
        taken = {t.i for s in spans for t in s}
        for chunk in doc.noun_chunks:
            toks = [t for t in chunk if t.lower_ not in _LEADING_DROP and t.pos_ != "DET"]
            if toks and all(t.pos_ == "PROPN" for t in toks) and \
                    not any(t.i in taken for t in toks):
                spans.append(doc[toks[0].i:toks[-1].i + 1])
                taken.update(t.i for t in toks)
        return sorted(spans, key=lambda s: s.start)

    def extract_doc(self, title: str | None, doc: Any, known: KnownPhrases | None = None
                    ) -> Extraction:
        ents = self._entity_spans(doc)
        tok_ent: dict[int, Any] = {t.i: e for e in ents for t in e}
        chunk_of: dict[int, Any] = {}
        if self.noun_phrases:
            for chunk in doc.noun_chunks:
                toks = [t for t in chunk if t.pos_ not in ("DET", "PRON")]
                if toks:
                    chunk_of[chunk.root.i] = doc[toks[0].i:toks[-1].i + 1]
        entities: list[str] = [title] if title else []
        triples: list[tuple[str, str, str]] = []
        for sent in doc.sents:
            sent_ents = [e for e in ents if e.start >= sent.start and e.end <= sent.end]
            names = [e.text for e in sent_ents]
            if known is not None:
                extra = [_Span(s.start + sent.start_char, s.end + sent.start_char, s.text)
                         for s in _known_spans(sent.text, known)]
                have = [_Span(e.start_char, e.end_char, e.text) for e in sent_ents]
                merged = _merge(have + extra)
                names = [s.text for s in merged]
            entities.extend(names)
            svo = self._svo(sent, tok_ent, chunk_of, title)
            triples.extend(svo)
            if self.cooccurrence:
                triples.extend(self._cooccurrence(sent, sent_ents, svo, title))
        return Extraction(clean_entities(entities), clean_triples(triples))

    def _arg(self, tok: Any, tok_ent: dict[int, Any], chunk_of: dict[int, Any],
             title: str | None) -> str | None:
        if tok.i in tok_ent:
            return str(tok_ent[tok.i].text)
        if tok.lower_ in _PRONOUNS and tok.pos_ == "PRON":
            return title
        if tok.i in chunk_of:
            return str(chunk_of[tok.i].text)
        return None

    def _svo(self, sent: Any, tok_ent: dict[int, Any], chunk_of: dict[int, Any],
             title: str | None) -> list[tuple[str, str, str]]:
        out: list[tuple[str, str, str]] = []
        for tok in sent:
            if tok.dep_ not in _SUBJ:
                continue
            subj = self._arg(tok, tok_ent, chunk_of, title)
            if subj is None:
                continue
            verbs = [tok.head] + [c for c in tok.head.children
                                  if c.dep_ == "conj" and c.pos_ in ("VERB", "AUX")
                                  and not any(g.dep_ in _SUBJ for g in c.children)]
            for verb in verbs:
                base = " ".join(t.text for t in sorted(
                    [verb, *[c for c in verb.children if c.dep_ in ("auxpass", "neg", "prt")]],
                    key=lambda t: t.i))
                for obj, pred in self._objects(verb, base):
                    arg = self._arg(obj, tok_ent, chunk_of, title)
                    if arg is not None:
                        out.append((subj, pred, arg))
                        continue
                    for prep in obj.children:  # "is the capital of X"
                        if prep.dep_ != "prep":
                            continue
                        for pobj in prep.children:
                            if pobj.dep_ == "pobj":
                                parg = self._arg(pobj, tok_ent, chunk_of, title)
                                if parg is not None:
                                    out.append((subj, f"{pred} {obj.text} {prep.text}", parg))
        return out

    def _objects(self, verb: Any, base: str) -> list[tuple[Any, str]]:
        found: list[tuple[Any, str]] = []
        for c in verb.children:
            if c.dep_ in _OBJ:
                found.append((c, base))
            elif c.dep_ in ("prep", "agent"):
                for p in c.children:
                    if p.dep_ == "pobj":
                        found.append((p, f"{base} {c.text}"))
        for tok, pred in list(found):  # "X and Y" objects
            found.extend((c, pred) for c in tok.children if c.dep_ == "conj")
        return found

    def _cooccurrence(self, sent: Any, sent_ents: list[Any],
                      svo: list[tuple[str, str, str]], title: str | None
                      ) -> list[tuple[str, str, str]]:
        if not sent_ents:
            return []
        linked = {t[0] for t in svo} | {t[2] for t in svo}
        first = sent[0]
        if title and first.lower_ in _PRONOUNS and first.pos_ == "PRON":
            subj, subj_end, objs = title, first.i + 1, sent_ents
        else:
            subj, subj_end, objs = sent_ents[0].text, sent_ents[0].end, sent_ents[1:]
        out = []
        doc = sent.doc
        for e in objs:
            if e.text in linked and subj in linked:
                continue
            between = doc[subj_end:e.start].text.split() if e.start > subj_end else []
            if not between or len(between) > self.max_predicate_words:
                continue
            out.append((subj, " ".join(between).strip(",;:"), e.text))
        return out
