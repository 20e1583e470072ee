"""Secret masking as Airflow's supervisor applies it to task logs (supervisor-behaviour.md §8).

The runtime does not mask; the supervisor does, with every secret it has seen: connection
passwords and extras, values of variables whose names look sensitive, and ``MaskSecret``
payloads. JWT-shaped strings are always redacted.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
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
_isfinite = math.isfinite


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

    def leaves_plain(self, value: Any) -> bool:
        """Whether ``value`` is plain JSON data that :meth:`redact` returns exactly as it is.

        Plain: made only of ``dict`` with ``str`` keys, ``list``, ``str``, ``int``, ``bool``,
        ``None`` and finite ``float`` (exact types, so the copy ``redact`` makes has the same
        types and compares equal), with no one-key map whose key starts with ``$`` (the tagged
        JSON of transcripts would wrap it). Unchanged: no string holds a registered secret or
        ``eyJ``, and no sensitive key holds anything but ``None``, ``""``, ``[]``, ``{}`` or
        ``"***"``.

        ``True`` is a proof; ``False`` only means "redact it the slow way". The transcript
        writer uses this to skip the redacting copy of values that have nothing to redact.
        """
        pattern = self._pattern
        if pattern is None and self._secrets:
            pattern = self._secret_pattern()
        search = None if pattern is None else pattern.search
        # The top level here, nested containers in _plain: one call for a flat body.
        t = type(value)
        if t is not dict:
            return _plain(value, search)
        if not (value.keys() <= _PLAIN_NAMES or _names_ok(value)):
            return False
        if len(value) == 1 and next(iter(value))[:1] == "$":
            return False
        for v in value.values():
            t = type(v)
            if t is str:
                if "eyJ" in v or (search is not None and search(v) is not None):
                    return False
            elif t is dict or t is list:
                if not _plain(v, search):
                    return False
            elif not (v is None or t is int or t is bool or (t is float and _isfinite(v))):
                return False
        return True

    def _secret_pattern(self) -> re.Pattern[str] | None:
        if not self._secrets:
            return None
        if self._pattern is None:
            # Longest first, so a secret containing another is masked whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
        return self._pattern

    def _redact_str(self, text: str) -> str:
        pattern = self._secret_pattern()
        if pattern is not None:
            text = pattern.sub(MASK, text)
        if "eyJ" in text:
            text = _JWT.sub("eyJ***", text)
        return text


# Key names seen not to be sensitive, so a map whose keys were all seen before is checked with one
# subset test. Bounded: key names come from the runtime and the API, and need not repeat.
_PLAIN_NAMES: set[str] = set()
_PLAIN_NAMES_MAX = 8192
_EMPTY_TYPES = (str, list, dict)


def _names_ok(mapping: dict[Any, Any]) -> bool:
    """Every key is a ``str`` and no sensitive key holds a value ``redact`` would mask whole."""
    for k, v in mapping.items():
        if type(k) is not str:
            return False
        if k in _PLAIN_NAMES:
            continue
        if is_sensitive_name(k):
            # redact() masks unless ``v in (None, "", [], {})`` (for exact types: these), and
            # masking "***" (a record redacted before) gives "***" again.
            if not (
                v is None or (type(v) in _EMPTY_TYPES and not v) or (type(v) is str and v == MASK)
            ):
                return False
        elif len(_PLAIN_NAMES) < _PLAIN_NAMES_MAX:
            _PLAIN_NAMES.add(k)
    return True


def _plain(value: Any, search: Callable[[str], Any] | None) -> bool:
    t = type(value)
    if t is dict:
        if not (value.keys() <= _PLAIN_NAMES or _names_ok(value)):
            return False
        if len(value) == 1 and next(iter(value))[:1] == "$":
            return False
        items: Any = value.values()
    elif t is list:
        items = value
    else:
        return _plain_leaf(value, t, search)
    for v in items:
        t = type(v)
        if t is str:
            if "eyJ" in v or (search is not None and search(v) is not None):
                return False
        elif t is dict or t is list:
            if not _plain(v, search):
                return False
        elif not (v is None or t is int or t is bool or (t is float and _isfinite(v))):
            return False
    return True


def _plain_leaf(value: Any, t: type, search: Callable[[str], Any] | None) -> bool:
    if t is str:
        return "eyJ" not in value and (search is None or search(value) is None)
    return value is None or t is int or t is bool or (t is float and _isfinite(value))
