"""The model signing key, and the HMAC that vouches for a bundle before anything in it is opened.

A model file is code: unpickling `pipeline.joblib` runs whatever the file says. A digest kept
next to the file proves nothing (whoever can write the folder rewrites both), so a bundle carries
`signature.json`: the sha256 of each of its files and an HMAC-SHA256 over that list, made with a
key held *outside* every model folder. Loading checks the HMAC and every digest, in memory, before
a single byte is parsed; without the key nothing loads.

Where the key comes from (the first that is set):

1. `LEADML_MODEL_SIGNING_KEY` (32 characters or more): for servers and CI, from a secret store.
2. The key file `LEADML_MODEL_SIGNING_KEY_FILE` (default `~/.config/leadml/model-signing.key`).
   Training and export create it (random, mode 0600) when it is missing and say so on stderr;
   loading never creates it, and refuses a key file that others may write or that lies inside
   the model folder being opened.

There is no setting that skips the check: a model signed with another key, or not signed, is
refused, and the message says how to get the right key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leadml.errors import ModelError
from leadml.settings import Settings

log = logging.getLogger("leadml.signing")

SIGNATURE_FILE = "signature.json"
SIGNATURE_FORMAT = 1
ALGORITHM = "hmac-sha256"
KEY_ENV = "LEADML_MODEL_SIGNING_KEY"
KEY_FILE_ENV = "LEADML_MODEL_SIGNING_KEY_FILE"
#: Shortest key accepted: 32 characters (a generated key is 64 hex digits, 256 bits).
MIN_KEY_CHARS = 32
#: signature.json is a few hundred bytes; anything much larger is not one.
MAX_SIGNATURE_BYTES = 64 * 1024


@dataclass(frozen=True)
class SigningKey:
    secret: bytes = b""
    #: Where the key came from, for messages (never the key itself).
    origin: str = ""
    #: The key file, if the key came from one (a model folder must not contain it).
    path: Path | None = None

    def __repr__(self) -> str:
        return f"SigningKey(origin={self.origin!r})"


def _key_text(text: str, origin: str) -> bytes:
    secret = text.strip()
    if len(secret) < MIN_KEY_CHARS:
        raise ModelError(
            f"the model signing key from {origin} is {len(secret)} characters; it needs at least"
            f" {MIN_KEY_CHARS} (make one with `python -c 'import secrets;"
            f" print(secrets.token_hex(32))'`)"
        )
    return secret.encode("utf-8")


def _from_settings(settings: Settings) -> SigningKey | None:
    if settings.model_signing_key is None:
        return None
    value = settings.model_signing_key.get_secret_value()
    return SigningKey(_key_text(value, KEY_ENV), KEY_ENV)


def _read_key_file(path: Path) -> SigningKey:
    try:
        status = path.stat()
    except OSError as error:
        raise ModelError(f"cannot read the model signing key file {path}: {error}") from None
    if not stat.S_ISREG(status.st_mode):
        raise ModelError(f"the model signing key file {path} is not a file; point {KEY_FILE_ENV}")
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ModelError(
            f"the model signing key file {path} may be written by other users; refusing it"
            f" (fix: chmod 600 {path})"
        )
    return SigningKey(_key_text(path.read_text(), str(path)), str(path), path)


def verifying_key(settings: Settings | None = None) -> SigningKey:
    """The key models are checked with; refuses when none is configured (never creates one)."""
    settings = settings or Settings()
    key = _from_settings(settings)
    if key is not None:
        return key
    path = settings.model_signing_key_file.expanduser()
    if not path.exists():
        raise ModelError(
            f"no model signing key: set {KEY_ENV} to the key the model was signed with, or"
            f" {KEY_FILE_ENV} to its key file (the training machine keeps it at {path});"
            f" a model is not opened unverified"
        )
    return _read_key_file(path)


def signing_key(settings: Settings | None = None) -> SigningKey:
    """The key new bundles are signed with; creates the key file on first use."""
    settings = settings or Settings()
    key = _from_settings(settings)
    if key is not None:
        return key
    path = settings.model_signing_key_file.expanduser()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        log.warning(
            "generated a model signing key at %s: servers that load these models need it"
            " (copy the file and set %s, or put its content in %s)",
            path,
            KEY_FILE_ENV,
            KEY_ENV,
        )
    return _read_key_file(path)


# --------------------------------------------------------------------------- the signature


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _signed_text(files: Mapping[str, str]) -> bytes:
    return json.dumps(
        {"format": SIGNATURE_FORMAT, "algorithm": ALGORITHM, "files": dict(sorted(files.items()))},
        sort_keys=True,
        separators=(",", ":"),
    ).encode("utf-8")


def manifest_digest(files: Mapping[str, str]) -> str:
    """One sha256 for the whole bundle (its files' digests): what the registry tag pins."""
    return sha256_hex(_signed_text(files))


def signature_for(files: Mapping[str, bytes], key: SigningKey) -> dict[str, Any]:
    """signature.json for the bundle whose file contents are `files` (name -> bytes)."""
    digests = {name: sha256_hex(content) for name, content in files.items()}
    tag = hmac.new(key.secret, _signed_text(digests), hashlib.sha256).hexdigest()
    return {
        "format": SIGNATURE_FORMAT,
        "algorithm": ALGORITHM,
        "files": dict(sorted(digests.items())),
        "hmac": tag,
    }


def verify(
    folder: Path, signature: bytes | None, files: Mapping[str, bytes], key: SigningKey
) -> str:
    """Check `files` (name -> the bytes just read) against the folder's signature.json bytes.

    Returns the bundle's manifest digest. Raises ModelError naming what does not match; the
    caller must not parse any of `files` unless this returns.
    """
    if key.path is not None and key.path.resolve().is_relative_to(folder.resolve()):
        raise ModelError(
            f"the signing key file {key.path} lies inside the model folder {folder}; whoever"
            f" writes the folder could rewrite it: keep the key outside ({KEY_FILE_ENV})"
        )
    if signature is None:
        raise ModelError(
            f"{folder} has no {SIGNATURE_FILE}: the model was not signed (made before signing,"
            f" or assembled by hand); retrain or re-export it with the signing key"
        )
    try:
        parsed = json.loads(signature)
        digests = {str(name): str(value) for name, value in parsed["files"].items()}
        claimed = str(parsed["hmac"])
        algorithm = parsed["algorithm"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ModelError(f"{folder / SIGNATURE_FILE} is damaged; refusing the model") from None
    if algorithm != ALGORITHM or set(digests) != set(files):
        raise ModelError(
            f"{folder / SIGNATURE_FILE} does not cover exactly {', '.join(sorted(files))};"
            f" refusing the model"
        )
    expected = hmac.new(key.secret, _signed_text(digests), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, claimed):
        raise ModelError(
            f"the signature of {folder} does not verify with the signing key from {key.origin}:"
            f" the model was changed after signing, or signed with another key; refusing it"
            f" (tampered or foreign model)"
        )
    for name, content in files.items():
        if not hmac.compare_digest(sha256_hex(content), digests[name]):
            raise ModelError(
                f"{folder / name} changed after the model was signed; refusing a tampered model"
            )
    return manifest_digest(digests)
