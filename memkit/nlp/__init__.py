"""Shared NLP helpers: Unicode phrase normalisation, sentence splitting, spaCy loading.

Used by the graph backends (HippoRAG's LLM-free extractor, Panini). Everything here works
without optional dependencies except :func:`load_spacy`, which needs the ``[nlp]`` extra
(``pip install 'memkit-agent[nlp]'``) and raises :class:`~memkit.errors.MissingDependency`
otherwise.
"""

from memkit.nlp.spacy_pipeline import DEFAULT_SPACY_MODEL, load_spacy, spacy_available
from memkit.nlp.text import alnum_count, normalise_phrase, split_sentences, split_title

__all__ = ["DEFAULT_SPACY_MODEL", "alnum_count", "load_spacy", "normalise_phrase",
           "spacy_available", "split_sentences", "split_title"]
