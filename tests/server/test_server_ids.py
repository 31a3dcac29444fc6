"""The opaque per-namespace id codec (memkit.server.ids): a permutation of [1, 2**52) per
namespace, reversible only with the memory's secret, and the modules' doctests."""

from __future__ import annotations

import doctest
import importlib
import random

import pytest

from memkit.server.ids import MAX_PUBLIC_ID, IdCodec


def test_a_permutation_per_namespace_that_round_trips() -> None:
    codec = IdCodec(b"s" * 32)
    ids = list(range(1, 5001))
    acme = [codec.encode(i, "acme") for i in ids]
    assert len(set(acme)) == len(ids) and all(1 <= x <= MAX_PUBLIC_ID for x in acme)
    assert [codec.decode(x, "acme") for x in acme] == ids
    globex = [codec.encode(i, "globex") for i in ids]
    assert len(set(acme) & set(globex)) == 0  # 5,000 of 2**52: a collision would be a bug
    rng = random.Random(0)
    for _ in range(2000):  # every public id decodes to something that encodes back to it
        x = rng.randrange(1, MAX_PUBLIC_ID + 1)
        assert codec.encode(codec.decode(x, "acme"), "acme") == x  # type: ignore[arg-type]


def test_consecutive_ids_look_unrelated() -> None:
    codec = IdCodec(b"s" * 32)
    public = [codec.encode(i, "acme") for i in range(1, 2001)]
    steps = [b - a for a, b in zip(public, public[1:], strict=False)]
    assert sum(s > 0 for s in steps) in range(900, 1101)  # order is a coin flip
    assert sum(abs(s) < 2**40 for s in steps) < 10  # and steps are not small


def test_another_secret_gives_other_ids_and_bad_input_is_refused() -> None:
    a, b = IdCodec(b"a" * 32), IdCodec(b"b" * 32)
    assert a.encode(1, "acme") != b.encode(1, "acme")
    assert a.decode(0, "acme") is None and a.decode(MAX_PUBLIC_ID + 1, "acme") is None
    assert a.encode(7, None) == 7 and a.decode(7, None) == 7  # unrestricted: the memory's ids
    with pytest.raises(OverflowError):
        a.encode(2**52, "acme")
    with pytest.raises(ValueError):
        IdCodec(b"short")


@pytest.mark.parametrize("name", ["memkit.server.ids", "memkit.admission"])
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
