"""API keys (hashed, constant-time compared, revocable) and scope confinement."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memkit import InvalidInput, NotFound, Scope, ScopeViolation
from memkit.errors import ConfigError
from memkit.server.app import ServeSettings, check_bind, is_loopback
from memkit.server.auth import OPEN, KeyStore, Principal, confine


@pytest.fixture
def keys(tmp_path: Path):  # type: ignore[no-untyped-def]
    ks = KeyStore.open(tmp_path / "mem", create=True)
    yield ks
    ks.close()


def test_key_is_stored_as_salted_hmac_never_in_clear(keys: KeyStore) -> None:
    full, record = keys.create("acme", user="u1", name="bot")
    prefix, key_id, secret = full[:3], full[3:15], full[16:]
    assert prefix == "mk_" and key_id == record.key_id and len(secret) == 43
    row = keys.store.conn.execute(
        "SELECT salt, digest FROM server_keys WHERE key_id = ?", (key_id,)).fetchone()
    salt, digest = row
    # the digest is HMAC-SHA256(salt, secret), computed independently here
    assert digest == hmac.new(salt, secret.encode(), hashlib.sha256).digest()
    dump = b"".join(bytes(str(r), "utf-8") for r in keys.store.conn.execute(
        "SELECT * FROM server_keys"))
    assert secret.encode() not in dump and full.encode() not in dump


def test_authenticate_accepts_the_key_and_rejects_near_misses(keys: KeyStore) -> None:
    full, record = keys.create("acme", agent="planner")
    who = keys.authenticate(full)
    assert who == Principal(key_id=record.key_id, namespace="acme", agent="planner")
    flipped = full[:-1] + ("A" if full[-1] != "A" else "B")
    other_id = full[:3] + "0" * 12 + full[15:]
    for bad in (flipped, other_id, full + "x", full[:-1], "", None, "Bearer " + full,
                "mk_zz_" + full[16:]):
        assert keys.authenticate(bad) is None, bad


def test_revoked_key_is_rejected_at_once_and_list_never_shows_secrets(keys: KeyStore) -> None:
    full, record = keys.create("acme")
    keep, _ = keys.create("globex")
    assert keys.active_count() == 2
    revoked = keys.revoke(record.key_id)
    assert revoked.revoked_at is not None
    assert keys.authenticate(full) is None
    assert keys.authenticate(keep) is not None
    assert keys.active_count() == 1
    assert [k.key_id for k in keys.list(include_revoked=False)] != [record.key_id]
    assert all("digest" not in k.as_dict() and "salt" not in k.as_dict() for k in keys.list())
    with pytest.raises(NotFound):
        keys.revoke("000000000000")


def test_revoke_by_full_key_and_last_used_recorded(keys: KeyStore) -> None:
    full, record = keys.create("acme")
    assert keys.authenticate(full) is not None
    (listed,) = keys.list()
    assert listed.last_used_at is not None
    keys.revoke(full)
    assert keys.authenticate(full) is None


def test_key_creation_validates(keys: KeyStore) -> None:
    with pytest.raises(InvalidInput):
        keys.create(None)
    with pytest.raises(InvalidInput):
        keys.create("acme", admin=True)
    with pytest.raises(InvalidInput):
        keys.create("bad\x00ns")
    full, record = keys.create(None, admin=True)
    assert keys.authenticate(full) == Principal(key_id=record.key_id, namespace=None,
                                                admin=True)


def test_keys_open_requires_existing_memory(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        KeyStore.open(tmp_path / "nothing")


def test_confine_forces_key_fields_and_refuses_others() -> None:
    p = Principal(key_id="k", namespace="acme", user="u1")
    assert confine(p, None) == Scope(namespace="acme", user="u1")
    assert confine(p, "acme") == Scope(namespace="acme", user="u1")
    assert confine(p, {"agent": "a", "session": "s"}) == Scope("acme", "u1", "a", "s")
    with pytest.raises(ScopeViolation):
        confine(p, {"namespace": "globex"})
    with pytest.raises(ScopeViolation):
        confine(p, {"user": "u2"})
    assert confine(OPEN, None) == Scope()
    assert confine(OPEN, {"namespace": "x", "user": "y"}) == Scope("x", "y")
    assert confine(OPEN, None, default_namespace="team") == Scope("team")


names = st.sampled_from(["acme", "globex", "u1", "u2", "a1"])
maybe = st.none() | names


@given(key_ns=names, key_user=maybe, key_agent=maybe,
       asked=st.fixed_dictionaries({}, optional={"namespace": maybe, "user": maybe,
                                                 "agent": maybe, "session": maybe}))
def test_confined_scope_always_lies_inside_the_key(key_ns: str, key_user: str | None,
                                                   key_agent: str | None,
                                                   asked: dict[str, str | None]) -> None:
    p = Principal(key_id="k", namespace=key_ns, user=key_user, agent=key_agent)
    conflict = any(asked.get(f) is not None and getattr(p, f) is not None
                   and asked[f] != getattr(p, f) for f in ("namespace", "user", "agent"))
    if conflict:
        with pytest.raises(ScopeViolation):
            confine(p, asked)
        return
    got = confine(p, asked)
    own = p.scope()
    assert own is not None and own.contains(got)  # every item read/written is the key's
    assert got.session == asked.get("session")


def test_check_bind_refuses_public_interface_without_keys() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    assert check_bind(ServeSettings(None, host="127.0.0.1"), 0) is False  # open, loopback
    assert check_bind(ServeSettings(None, host="127.0.0.1"), 2) is True
    assert check_bind(ServeSettings(None, host="127.0.0.1", auth="required"), 0) is True
    assert check_bind(ServeSettings(None, host="0.0.0.0"), 1) is True
    with pytest.raises(ConfigError, match="refusing"):
        check_bind(ServeSettings(None, host="0.0.0.0"), 0)
    with pytest.raises(ConfigError, match="refusing"):
        check_bind(ServeSettings(None, host="10.1.2.3", auth="off"), 5)
