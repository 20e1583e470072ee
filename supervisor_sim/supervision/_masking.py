"""Secret masking as Airflow's supervisor applies it to task logs (supervisor-behaviour.md §8).

The runtime does not mask; the supervisor does, with every secret it has seen: connection
passwords and extras, values of variables whose names look sensitive, and ``MaskSecret``
payloads. JWT-shaped strings are always redacted.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["SENSITIVE_NAMES", "SecretsMasker", "is_sensitive_name"]

# Airflow's DEFAULT_SENSITIVE_FIELDS (airflow/_shared/secrets_masker).
SENSITIVE_NAMES = frozenset(
    {
        "access_token", "api_key", "apikey", "authorization", "passphrase", "passwd",
        "password", "private_key", "proxy", "proxies", "secret", "token", "keyfile_dict",
        "service_account",
    }
)  # fmt: skip

_JWT = re.compile(r"eyJ[.A-Za-z0-9\-_]*")
MASK = "***"


_SENSITIVE = re.compile("|".join(sorted(SENSITIVE_NAMES)))


@functools.lru_cache(maxsize=4096)
def is_sensitive_name(name: str) -> bool:
    # One regex search, cached per key: the transcript redacts every key of every record.
    return _SENSITIVE.search(name.lower()) is not None


class SecretsMasker:
    """Replaces every registered secret in strings, maps and lists with ``***``."""

    def __init__(self, *, min_length: int = 5) -> None:
        self.min_length = min_length
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def __len__(self) -> int:
        return len(self._secrets)

    def add(self, value: Any) -> None:
        """Register a secret: a string, or every string inside a list or map."""
        if isinstance(value, str):
            # Airflow never masks short values or the word "airflow": they would mask everything.
            if (
                len(value) >= self.min_length
                and value.lower() != "airflow"
                and value not in self._secrets
            ):
                self._secrets.add(value)
                self._pattern = None
        elif isinstance(value, Mapping):
            for v in value.values():
                self.add(v)
        elif isinstance(value, list | tuple | set):
            for v in value:
                self.add(v)

    def redact(self, value: Any, name: str | None = None) -> Any:
        """A copy of ``value`` with secrets masked; values under sensitive keys are masked whole."""
        if name is not None and is_sensitive_name(name) and value not in (None, "", [], {}):
            return MASK
        if isinstance(value, str):
            return self._redact_str(value)
        if isinstance(value, Mapping):
            return {k: self.redact(v, k if isinstance(k, str) else None) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact(v) for v in value]
        return value

    def _redact_str(self, text: str) -> str:
        if self._secrets:
            if self._pattern is None:
                # Longest first, so a secret containing another is masked whole.
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
            text = self._pattern.sub(MASK, text)
        if "eyJ" in text:
            text = _JWT.sub("eyJ***", text)
        return text
