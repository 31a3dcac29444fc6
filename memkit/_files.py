"""Atomic file replacement that several processes can do at once.

Each writer uses its own temporary name (pid, thread and a random part), so two processes
saving the same index never collide on one fixed ``.tmp`` name; the rename is atomic.
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path


def private_tmp(path: Path, suffix: str = "") -> Path:
    """A temporary sibling of ``path`` that no other writer uses.

    >>> p = private_tmp(Path("/x/dense.faiss"))
    >>> p.parent == Path("/x") and p.name.startswith(".dense.faiss.") and p.name.endswith(".tmp")
    True
    """
    tag = f"{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}"
    return path.with_name(f".{path.name}.{tag}.tmp{suffix}")


def replace_from(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` over ``path``; on failure remove ``tmp`` and re-raise."""
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
