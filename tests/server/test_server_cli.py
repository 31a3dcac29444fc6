"""`memkit keys create|list|revoke` and `memkit serve`'s refusals (click, in process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from memkit.server.auth import KeyStore
from memkit.server.cli import keys_group, serve_cmd


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    mem = str(tmp_path / "mem")
    run = CliRunner()
    out = run.invoke(keys_group, ["create", "--memory", mem, "--namespace", "acme", "--user",
                                  "u1", "--name", "ci-bot"])
    assert out.exit_code == 0, out.output
    key = out.stdout.strip().splitlines()[0]
    assert key.startswith("mk_") and "Store it now" in out.stderr
    made = json.loads(run.invoke(keys_group, ["create", "--memory", mem, "--admin",
                                              "--json"]).stdout)
    assert made["admin"] is True and made["key"].startswith("mk_")
    listed = [json.loads(x) for x in run.invoke(
        keys_group, ["list", "--memory", mem, "--json"]).stdout.splitlines()]
    assert {k["name"] for k in listed} == {"ci-bot", None}
    assert all("key" not in k and "digest" not in k for k in listed)  # secrets never listed
    human = run.invoke(keys_group, ["list", "--memory", mem]).stdout
    assert "acme/user=u1" in human and "admin" in human and key not in human
    ks = KeyStore.open(mem)
    assert ks.authenticate(key) is not None
    ks.close()
    out = run.invoke(keys_group, ["revoke", "--memory", mem, key[3:15]])
    assert out.exit_code == 0 and "revoked" in out.stdout
    ks = KeyStore.open(mem)
    assert ks.authenticate(key) is None
    ks.close()
    assert len(run.invoke(keys_group, ["list", "--memory", mem, "--active", "--json"])
               .stdout.splitlines()) == 1


def test_keys_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    run = CliRunner()
    out = run.invoke(keys_group, ["create", "--memory", str(tmp_path / "m")])
    assert out.exit_code == 2 and "--namespace" in out.output
    out = run.invoke(keys_group, ["list", "--memory", str(tmp_path / "nothing")])
    assert out.exit_code == 1 and "no memory at" in out.output
    run.invoke(keys_group, ["create", "--memory", str(tmp_path / "m"), "--namespace", "a"])
    out = run.invoke(keys_group, ["revoke", "--memory", str(tmp_path / "m"), "000000000000"])
    assert out.exit_code == 1 and "no key" in out.output
    assert "Traceback" not in out.output


def test_serve_refuses_a_public_interface_without_keys(tmp_path: Path,
                                                       new_memory: Any) -> None:
    new_memory(tmp_path / "m")
    out = CliRunner().invoke(serve_cmd, ["--memory", str(tmp_path / "m"), "--host", "0.0.0.0",
                                         "--port", "1"])
    assert out.exit_code == 1 and "refusing to serve on 0.0.0.0" in out.output
    out = CliRunner().invoke(serve_cmd, ["--memory", str(tmp_path / "m"), "--host", "0.0.0.0",
                                         "--auth", "off", "--port", "1"])
    assert out.exit_code == 1 and "refusing" in out.output
