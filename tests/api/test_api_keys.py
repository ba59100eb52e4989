from __future__ import annotations

import hashlib
import io

import pytest

from api.keys import ApiKeys, KeyConfigError, Role, hash_key, main


def test_a_key_is_stored_as_its_sha256_digest() -> None:
    assert hash_key("secret") == hashlib.sha256(b"secret").hexdigest()


def test_roles_come_from_the_matching_entries_and_admin_can_score() -> None:
    keys = ApiKeys.parse(f" scorer:{hash_key('s')} , admin:{hash_key('a')},")
    assert keys.roles_of("s") == {Role.SCORER}
    assert keys.roles_of("a") == {Role.SCORER, Role.SALES, Role.ADMIN}
    assert keys.roles_of("unknown") == frozenset()
    assert keys.roles_of("") == frozenset()


def test_digests_are_read_in_any_case() -> None:
    keys = ApiKeys.parse(f"ADMIN:{hash_key('a').upper()}")
    assert keys.roles_of("a") == {Role.SCORER, Role.SALES, Role.ADMIN}


def test_no_entries_means_no_keys() -> None:
    assert not ApiKeys.parse("")
    assert not ApiKeys.parse(" , ")


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("0" * 64, "has no role"),
        (f"reader:{'0' * 64}", "unknown role 'reader'"),
        ("scorer:my-plain-secret", "not a sha256 hex digest"),
        (f"scorer:{'g' * 64}", "not a sha256 hex digest"),
    ],
)
def test_bad_entries_are_refused_with_the_reason(entry: str, says: str) -> None:
    with pytest.raises(KeyConfigError, match=says):
        ApiKeys.parse(entry)


def test_a_refused_entry_never_shows_a_plain_key_in_full() -> None:
    with pytest.raises(KeyConfigError) as refused:
        ApiKeys.parse("a-long-plain-secret-key-that-is-not-hashed")
    assert "a-long-plain-secret-key-that-is-not-hashed" not in str(refused.value)


def test_the_command_line_hashes_a_key_from_an_argument_or_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["hash", "secret"]) == 0
    assert capsys.readouterr().out.strip() == hash_key("secret")
    monkeypatch.setattr("sys.stdin", io.StringIO("secret\n"))
    assert main(["hash"]) == 0
    assert capsys.readouterr().out.strip() == hash_key("secret")


def test_the_command_line_makes_a_key_and_its_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "--role", "admin"]) == 0
    lines = capsys.readouterr().out.splitlines()
    key = lines[0].split()[-1]
    entry = lines[1].split()[-1]
    assert ApiKeys.parse(entry).roles_of(key) == {Role.SCORER, Role.SALES, Role.ADMIN}
