"""API keys: shown once, stored only as salted scrypt hashes in a private file, revocable."""

from __future__ import annotations

import json
import stat

import pytest

from serving.api.keys import SCRYPT, ApiKeys, KeyFileError


def test_the_key_file_holds_a_salted_scrypt_hash_never_the_key(tmp_path):
    keys = ApiKeys(tmp_path / "api_keys.json")
    first, second = keys.create("crm"), keys.create("bi")
    text = (tmp_path / "api_keys.json").read_text()
    secret = first.split("_", 2)[2]
    assert first not in text and secret not in text
    records = json.loads(text)["keys"]
    assert [r["name"] for r in records] == ["crm", "bi"]
    assert records[0]["scrypt"] == SCRYPT and records[0]["salt"] != records[1]["salt"]
    assert stat.S_IMODE((tmp_path / "api_keys.json").stat().st_mode) == 0o600
    assert keys.verify(first) == "crm" and keys.verify(second) == "bi"


def test_wrong_unknown_malformed_and_missing_keys_are_refused(tmp_path):
    keys = ApiKeys(tmp_path / "api_keys.json")
    key = keys.create("crm")
    wrong_secret = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    unknown_id = "cs_000000000000_" + key.split("_", 2)[2]
    for presented in (wrong_secret, unknown_id, "not-a-key", "", None, key + "x"):
        assert keys.verify(presented) is None, presented


def test_a_revoked_key_is_refused_at_once_even_after_it_was_accepted(tmp_path):
    keys = ApiKeys(tmp_path / "api_keys.json")
    key = keys.create("crm")
    assert keys.verify(key) == "crm"  # now remembered in memory
    ApiKeys(tmp_path / "api_keys.json").revoke("crm")  # e.g. by `custscore api keys revoke` in another process
    assert keys.verify(key) is None
    assert [(k.name, k.revoked_at is not None) for k in keys.list()] == [("crm", True)]


def test_a_name_in_use_is_refused_until_revoked(tmp_path):
    keys = ApiKeys(tmp_path / "api_keys.json")
    old = keys.create("crm")
    with pytest.raises(KeyFileError, match="a key named 'crm' exists"):
        keys.create("crm")
    keys.revoke("crm")
    new = keys.create("crm")
    assert keys.verify(new) == "crm" and keys.verify(old) is None
    with pytest.raises(KeyFileError, match="no active key named 'bi'"):
        keys.revoke("bi")
    with pytest.raises(KeyFileError, match="not allowed"):
        keys.create("crm; rm -rf /")


def test_a_damaged_key_file_is_named_in_one_line(tmp_path):
    (tmp_path / "api_keys.json").write_text("{not json")
    with pytest.raises(KeyFileError, match="api_keys.json: cannot read the API key file"):
        ApiKeys(tmp_path / "api_keys.json").list()
