"""Where a HippoRAG passage's extraction comes from, cheapest first: offered by another stage
(the Ray ingest's extract stage), the record's extraction cache (a rebuild, a resumed
ingest), or the extractor itself - whose LLM cost is added up here. A spaCy extractor can
also parse ahead (:meth:`PassageExtraction.expect`), so ``write_many`` parses a group while
it embeds the group's passages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

from memkit.backends.hipporag.extraction import Extraction, Extractor
from memkit.ingest.extractions import ExtractionCache
from memkit.metering import metered
from memkit.store.sqlite import content_hash
from memkit.types import Cost, MemoryItem


class PassageExtraction:
    """The extractions of one backend's passages (thread-safe: batches are prepared
    concurrently). ``cost``: what this process's extraction spent (LLM OpenIE)."""

    def __init__(self, extractor: Extractor, store: Any) -> None:
        self.extractor = extractor
        self.store = store
        self.cost = Cost()
        self._cost_lock = threading.Lock()
        self._offered: dict[str, Extraction] = {}
        self._offered_lock = threading.Lock()
        self._cache: ExtractionCache | Literal[False] | None = None  # False: none

    def offer(self, extractor: str, by_hash: dict[str, Extraction]) -> int:
        """Extractions made elsewhere, by the content hash of the passage text, used instead
        of extracting those passages again. Ignored (0) unless made by this kind of
        extractor. Kept in memory only: a crash loses them and the passages are simply
        extracted here."""
        if extractor != self.extractor.name:
            return 0
        with self._offered_lock:
            self._offered.update(by_hash)
        return len(by_hash)

    def cache(self) -> ExtractionCache | None:
        """The record's cache of this extractor's results, when it has a ``cache_key``
        (spaCy; LLM extractions are cached as LLM responses, rules are cheaper than a
        lookup)."""
        if self._cache is None:
            key = getattr(self.extractor, "cache_key", None)
            self._cache = ExtractionCache(self.store, f"hipporag.{self.extractor.name}",
                                          key()) if callable(key) else False
        return self._cache or None

    def still_to_extract(self, texts: Sequence[str]) -> list[str]:
        """Those of ``texts`` :meth:`extract` will hand the extractor: not offered, not
        cached."""
        out = list(texts)
        with self._offered_lock:
            if self._offered:
                out = [t for t in out if content_hash(t) not in self._offered]
        cache = self.cache()
        if cache is not None and out:
            have = cache.get(out)
            out = [t for t in out if t not in have]
        return out

    def expect(self, texts: Sequence[str]) -> None:
        """Start parsing these texts ahead (an extractor that can: spaCy's); nothing else."""
        prefetch = getattr(self.extractor, "prefetch", None)
        if callable(prefetch):
            prefetch(self.still_to_extract(texts))

    def extract(self, items: Sequence[MemoryItem], known: Callable[[str], bool]
                ) -> list[Extraction]:
        """One extraction per item (``known``: whether a phrase is a graph node already);
        what the extractor made is cached (failures are not: they are retried)."""
        out: list[Extraction | None] = [None] * len(items)
        if self._offered:
            with self._offered_lock:
                for n, it in enumerate(items):
                    out[n] = self._offered.pop(it.content_hash, None)
        made = [n for n, ex in enumerate(out) if ex is not None]
        rest = [n for n, ex in enumerate(out) if ex is None]
        cache = self.cache()
        if rest and cache is not None:
            have = cache.get(items[n].text for n in rest)
            for n in rest:
                if items[n].text in have:
                    out[n] = _from_json(have[items[n].text])
            rest = [n for n in rest if out[n] is None]
        if rest:
            with metered() as spent:  # the LLM OpenIE's calls and tokens (0 for the others)
                try:
                    got = self.extractor.extract([items[n].text for n in rest], known=known)
                except Exception as exc:  # an extractor bug must not lose the passages
                    got = [Extraction(error=f"extractor failed: {exc!r}") for _ in rest]
            with self._cost_lock:
                self.cost.add(spent)
            for n, ex in zip(rest, got, strict=True):
                out[n] = ex
            made += rest
        if cache is not None and made:
            done = [(items[n].text, out[n]) for n in made]
            cache.put({text: {"entities": e.entities, "triples": e.triples}
                       for text, e in done if e is not None and e.ok})
        return [ex if ex is not None else Extraction(error="no extraction") for ex in out]


def _from_json(value: dict[str, Any]) -> Extraction:
    return Extraction(list(value.get("entities", [])),
                      [(str(a), str(b), str(c)) for a, b, c in value.get("triples", [])])
