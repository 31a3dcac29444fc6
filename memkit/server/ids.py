"""Opaque per-namespace item ids for the served API (issue 15, defect 10).

Inside a memory, item ids come from one sequence shared by every tenant, so a tenant that
saw ids 17 and 25 would know that others wrote 7 items in between. A namespaced API key
therefore never sees those ids: it sees ``encode(id, namespace)``, a keyed pseudorandom
permutation of ``[1, 2**52)`` (52 bits: every id is exact in a JSON/JavaScript number). The
permutation is a Feistel network of 6 rounds over two 26-bit halves, each round a keyed
BLAKE2b of the namespace, the round number and the other half; the key is a random secret of
the memory (table ``server_secrets`` in ``memory.db``), so ids are stable across restarts and
server processes, and without the secret they reveal nothing about order or count.

Another namespace's public id decodes to an unrelated internal id (almost surely one that does
not exist, and one outside the caller's scope otherwise), answered like a missing id: 404.
Admin keys and open (keyless, loopback) servers see the internal ids, as the Python API does.

>>> codec = IdCodec(b"k" * 32)
>>> a = codec.encode(1, "acme")
>>> codec.decode(a, "acme"), a != 1, codec.encode(1, "globex") != a
(1, True, True)
>>> codec.encode(7, None)  # unrestricted: the internal id
7
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache
from typing import Any

ID_BITS = 52
MAX_PUBLIC_ID = 2**ID_BITS - 1
_HALF = ID_BITS // 2
_MASK = (1 << _HALF) - 1
_ROUNDS = 6


class IdCodec:
    """Maps internal item ids to a namespace's public ids and back. Thread-safe."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the id secret must be at least 16 bytes")
        self._secret = secret
        self._round_keys = lru_cache(maxsize=1024)(self._make_round_keys)
        self.encode = lru_cache(maxsize=65_536)(self._encode)  # type: ignore[method-assign]
        self.decode = lru_cache(maxsize=65_536)(self._decode)  # type: ignore[method-assign]

    def _make_round_keys(self, namespace: str) -> tuple[Any, ...]:
        """One keyed BLAKE2b per round (copied, never updated in place: thread-safe)."""
        base = hmac.new(self._secret, b"item-ids\x00" + namespace.encode("utf-8"),
                        hashlib.sha256).digest()
        return tuple(hashlib.blake2b(bytes([r]), key=base, digest_size=4)
                     for r in range(_ROUNDS))

    @staticmethod
    def _f(key: Any, half: int) -> int:
        h = key.copy()
        h.update(half.to_bytes(4, "big"))
        return int.from_bytes(h.digest(), "big") & _MASK

    def _permute(self, x: int, keys: tuple[Any, ...]) -> int:
        left, right = x >> _HALF, x & _MASK
        for key in keys:
            left, right = right, left ^ self._f(key, right)
        return (left << _HALF) | right

    def _unpermute(self, x: int, keys: tuple[Any, ...]) -> int:
        left, right = x >> _HALF, x & _MASK
        for key in reversed(keys):
            left, right = right ^ self._f(key, left), left
        return (left << _HALF) | right

    def encode(self, item_id: int, namespace: str | None) -> int:
        """The public id of internal ``item_id`` for keys of ``namespace`` (None: itself)."""
        return self._encode(item_id, namespace)

    def decode(self, public_id: int, namespace: str | None) -> int | None:
        """The internal id behind ``public_id``, or None when it cannot be one."""
        return self._decode(public_id, namespace)

    def _encode(self, item_id: int, namespace: str | None) -> int:
        if namespace is None:
            return item_id
        if not 1 <= item_id <= MAX_PUBLIC_ID:
            raise OverflowError(f"internal id {item_id} is beyond the {ID_BITS}-bit id space")
        keys = self._round_keys(namespace)
        x = self._permute(item_id, keys)
        while x == 0:  # cycle-walk: 0 is not an id
            x = self._permute(x, keys)
        return x

    def _decode(self, public_id: int, namespace: str | None) -> int | None:
        if namespace is None:
            return public_id
        if not 1 <= public_id <= MAX_PUBLIC_ID:
            return None
        keys = self._round_keys(namespace)
        x = self._unpermute(public_id, keys)
        while x == 0:
            x = self._unpermute(x, keys)
        return x
