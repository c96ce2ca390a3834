"""Keyed pseudonyms: HMAC-SHA256 over (entity type, normalised value), 128 bits shown.

Why HMAC and not a hash: a plain or salted SHA of an email or phone number is reversed by
hashing a dictionary of candidates; without the key an HMAC cannot be recomputed, and the same
value under the same key gives the same pseudonym in every shard, worker and run.

The key never leaves the environment variable it is read from: it is not pickled, logged or
written anywhere; only :func:`key_id` (an HMAC of a fixed label, 64 bits) is recorded.

Example:
    >>> p = Pseudonymizer(b"example key, use 32 random bytes")
    >>> p.token("email", "ann@example.com") == p.token("email", "ann@example.com")
    True
    >>> len(p.token("email", "ann@example.com"))
    32
"""
from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache

from maskpipe.errors import ConfigError

TOKEN_HEX = 32  # 128 bits
_KEY_ID_LABEL = b"maskpipe key id"


def read_key(key_env: str, yaml_path: str = "privacy") -> bytes:
    """The pseudonym key from ``os.environ[key_env]`` (UTF-8 bytes).

    Raises:
        ConfigError: the variable is unset or empty (the message names the variable only).
    """
    value = os.environ.get(key_env, "")
    if not value:
        raise ConfigError(missing_key_message(key_env, yaml_path))
    return value.encode("utf-8")


DEFAULT_KEY_ENV = "MASKPIPE_PII_KEY"


def key_env_label(key_env: str, yaml_path: str = "privacy") -> str:
    """How messages refer to the key variable without ever echoing what ``key_env`` holds.

    ``key_env`` comes from the YAML, and a key pasted there by mistake can look like a
    variable name (``sk_live_...``, a hex key starting with a letter): only the default name,
    a constant of this module, is ever printed; any other is named by its YAML key.
    """
    if key_env == DEFAULT_KEY_ENV:
        return f"environment variable {key_env}"
    return f"the environment variable named in {yaml_path}.key_env"


def missing_key_message(key_env: str, yaml_path: str) -> str:
    label = key_env_label(key_env, yaml_path)
    name = key_env if key_env == DEFAULT_KEY_ENV else "<that name>"
    return (
        f"{yaml_path}.key_env: {label} is not set or empty, but pseudonyms "
        f"need a key; set it to a long random secret (e.g. `export {name}=$(openssl rand -hex 32)`) "
        "in the environment of every process that runs maskpipe (on a Ray cluster: on every node); "
        f"{yaml_path}.key_env must hold the variable's NAME, never the key itself"
    )


def key_id_of(key: bytes) -> str:
    """64-bit, non-reversible identifier of ``key`` (what manifests record)."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


class Pseudonymizer:
    """Computes pseudonym tokens under one key.

    Args:
        key: the secret key bytes.
    """

    def __init__(self, key: bytes):
        # The cache lives on the instance so that two keys never share entries.
        self.token = lru_cache(maxsize=1 << 16)(self._token)
        self._key = key

    def _token(self, entity: str, normalised: str) -> str:
        msg = entity.encode("utf-8") + b"\x00" + normalised.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:TOKEN_HEX]

    def __reduce__(self):  # never let the key travel through pickle (Ray, multiprocessing)
        raise TypeError("Pseudonymizer holds the secret key and cannot be pickled; "
                        "build it in the worker from the environment variable")
