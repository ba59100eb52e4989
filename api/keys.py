"""API keys: kept as sha256 digests with a role, checked in constant time.

Settings hold entries like ``scorer:<sha256 hex>,admin:<sha256 hex>``; the keys themselves never
reach a config file. This module needs nothing but the standard library, so keys can be made and
hashed where leadml is not installed:

    python -m api.keys new            # a fresh random key and the entry to configure for it
    python -m api.keys hash           # reads a key on stdin, prints its sha256 digest
    python -m api.keys hash KEY       # the same, for a key given as an argument
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

HEADER = "X-API-Key"
_HEX_DIGITS = frozenset("0123456789abcdef")


class Role(StrEnum):
    SCORER = "scorer"
    SALES = "sales"
    ADMIN = "admin"


#: What each role may do: sales may post outcomes (and nothing else); an admin may do everything.
GRANTS: dict[Role, frozenset[Role]] = {
    Role.SCORER: frozenset({Role.SCORER}),
    Role.SALES: frozenset({Role.SALES}),
    Role.ADMIN: frozenset({Role.SCORER, Role.SALES, Role.ADMIN}),
}


class KeyConfigError(ValueError):
    """The configured key list cannot be used; the message says which entry and why."""


def hash_key(key: str) -> str:
    """The sha256 hex digest stored in settings for `key`."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class KeyEntry:
    role: Role
    digest: bytes


@dataclass(frozen=True)
class ApiKeys:
    """The configured keys; `roles_of` answers which roles a presented key carries."""

    entries: tuple[KeyEntry, ...]

    @classmethod
    def parse(cls, text: str) -> ApiKeys:
        """Parse ``role:sha256hex`` entries separated by commas (blank entries are skipped)."""
        entries = [_parse_entry(item.strip()) for item in text.split(",") if item.strip()]
        return cls(tuple(entries))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def roles_of(self, key: str) -> frozenset[Role]:
        """Every role granted to `key`; empty for an unknown key.

        The presented key is hashed once and compared with every configured digest, all of them,
        with `hmac.compare_digest`, so the time taken says nothing about which entry (if any)
        matched.
        """
        presented = hashlib.sha256(key.encode("utf-8")).digest()
        granted: set[Role] = set()
        for entry in self.entries:
            if hmac.compare_digest(presented, entry.digest):
                granted |= GRANTS[entry.role]
        return frozenset(granted)


def _parse_entry(item: str) -> KeyEntry:
    role_text, separator, digest = item.partition(":")
    if not separator:
        raise KeyConfigError(
            f"API key entry {_shown(item)} has no role; write it as 'scorer:<sha256 hex>'"
            " or 'admin:<sha256 hex>' (python -m api.keys hash makes the digest)"
        )
    try:
        role = Role(role_text.strip().lower())
    except ValueError:
        raise KeyConfigError(
            f"API key entry {_shown(item)} has the unknown role {role_text.strip()!r};"
            f" use one of {', '.join(r.value for r in Role)}"
        ) from None
    digest = digest.strip().lower()
    if len(digest) != 64 or not set(digest) <= _HEX_DIGITS:
        raise KeyConfigError(
            f"API key entry for role {role.value!r} is not a sha256 hex digest (64 hex digits);"
            " store the digest, not the key: python -m api.keys hash"
        )
    return KeyEntry(role, bytes.fromhex(digest))


def _shown(item: str) -> str:
    # Never echo what may be a raw key in full.
    return repr(item[:12] + "...") if len(item) > 12 else repr(item)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m api.keys", description="Make and hash leadml API keys."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    hash_cmd = commands.add_parser("hash", help="print the sha256 digest of a key")
    hash_cmd.add_argument("key", nargs="?", help="the key (default: read one line from stdin)")
    new_cmd = commands.add_parser("new", help="make a random key and print its settings entry")
    new_cmd.add_argument("--role", choices=[r.value for r in Role], default=Role.SCORER.value)
    args = parser.parse_args(argv)
    if args.command == "hash":
        key = args.key if args.key is not None else sys.stdin.readline().rstrip("\r\n")
        if not key:
            parser.error("no key given")
        print(hash_key(key))
        return 0
    key = new_key()
    print(f"key (give it to the client; it is not stored):  {key}")
    print(f"entry for LEADML_API_KEYS:                      {args.role}:{hash_key(key)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
