"""The Ed25519 key that signs checkpoints, and checking signatures with the public key.

The private key is the Airflow connection `lifecycle_signing_key` (password = base64 of
the 32-byte seed; AIRFLOW_CONN_LIFECYCLE_SIGNING_KEY, or Airflow's secrets backend when
running inside Airflow); when there is none, a key generated once under .lifecycle/ (a
local machine). Never in the telecom database or the repository. Verifiers need only the
public key: LIFECYCLE_SIGNING_PUBLIC_KEY (base64 of the 32 raw bytes), else the one
derived from the private key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from telco_lifecycle.settings import project_dir

CONN_ID = "lifecycle_signing_key"
CONN_ENV = "AIRFLOW_CONN_LIFECYCLE_SIGNING_KEY"
PUBLIC_KEY_ENV = "LIFECYCLE_SIGNING_PUBLIC_KEY"


class SigningKeyInvalid(ValueError):
    """The configured key cannot be used."""


def _seed_from_connection() -> str | None:
    value = os.environ.get(CONN_ENV)
    if value:
        if value.lstrip().startswith("{"):
            return json.loads(value).get("password")
        return unquote(urlsplit(value).password or "") or None
    if "airflow" in sys.modules:  # inside Airflow: its secrets backends
        try:
            from airflow.sdk import BaseHook

            return BaseHook.get_connection(CONN_ID).password
        except Exception:  # no such connection: fall back to the local key
            return None
    return None


def local_key_file() -> Path:
    return project_dir() / ".lifecycle" / "signing_key"


def _local_seed() -> str:
    path = local_key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = base64.b64encode(os.urandom(32)).decode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(seed + "\n")
        except FileExistsError:
            pass  # another process made it first
    return path.read_text().strip()


def signing_key() -> Ed25519PrivateKey:
    seed = _seed_from_connection() or _local_seed()
    try:
        raw = base64.b64decode(seed, validate=True)
    except ValueError as error:
        raise SigningKeyInvalid(f"the {CONN_ID} key is not base64: {error}") from None
    if len(raw) != 32:
        raise SigningKeyInvalid(f"the {CONN_ID} key must be 32 bytes (base64 of an Ed25519 seed), not {len(raw)}")
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key(explicit: str | None = None) -> Ed25519PublicKey:
    """The verifying key: `explicit` or LIFECYCLE_SIGNING_PUBLIC_KEY (base64), else from the private key."""
    value = explicit or os.environ.get(PUBLIC_KEY_ENV)
    if value:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(value))
    return signing_key().public_key()


def public_key_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def sign(key: Ed25519PrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data)).decode()


def verify(key: Ed25519PublicKey, data: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature), data)
        return True
    except (InvalidSignature, ValueError):
        return False
