"""Secret masking as Airflow's supervisor applies it to task logs.

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


#: Up to this many secrets, one compiled alternation (longest first) finds them. It is the
#: fastest for a few, but its cost per character grows with their number, and it is compiled
#: again after each new one. Past this many, a trie does: one step per character of a new
#: secret, and a scan whose cost per character does not grow with their number (the two cost
#: the same at about 60 secrets; bench/masking.py).
_REGEX_MAX = 64
_END = ""  # the trie key marking the end of a secret (a real key is one character)
#: Deeper than this, a value is taken to hold a cycle: only a Python caller can build one.
_MAX_WALK = 10_000
_EMPTY: tuple[Any, ...] = (None, "", [], {})


class SecretsMasker:
    """Replaces every registered secret in strings, maps and lists with ``***``.

    A string is masked left to right: at each position the longest secret that starts there is
    replaced, and the scan goes on after it. Walks are iterative, so no value is too deep.
    """

    def __init__(self, *, min_length: int = 5) -> None:
        self.min_length = min_length
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._trie: dict[str, Any] | None = None
        #: The trie's search, while the trie is in use (None: the alternation's).
        self._trie_search: Callable[[str], Any] | None = None
        # The empty secret (min_length 0) matches between all characters, as the alternation
        # does; only the alternation reproduces that, so it then stays in use.
        self._has_empty = False

    def __len__(self) -> int:
        return len(self._secrets)

    def add(self, value: Any) -> None:
        """Register a secret: a string, or every string inside a list or map."""
        stack = [(value, 0)]
        while stack:
            value, depth = stack.pop()
            if isinstance(value, str):
                self._add_str(value)
                continue
            if isinstance(value, Mapping):
                items: Any = value.values()
            elif isinstance(value, list | tuple | set):
                items = value
            else:
                continue
            if depth >= _MAX_WALK:
                raise RecursionError(f"a value nested over {_MAX_WALK} levels deep (a cycle?)")
            stack.extend((v, depth + 1) for v in items)

    def _add_str(self, value: str) -> None:
        # Airflow never masks short values or the word "airflow": they would mask everything.
        if len(value) < self.min_length or value.lower() == "airflow" or value in self._secrets:
            return
        self._secrets.add(value)
        self._pattern = None
        if not value:
            self._has_empty = True
            self._trie_search = None
        trie = self._trie
        if trie is not None:
            _insert(trie, value)
        elif len(self._secrets) > _REGEX_MAX:
            trie = {}
            for secret in self._secrets:
                _insert(trie, secret)
            self._trie = trie
            if not self._has_empty:
                self._trie_search = functools.partial(_trie_search, trie)

    def redact(self, value: Any, name: str | None = None) -> Any:
        """A copy of ``value`` with secrets masked; values under sensitive keys are masked whole."""
        if name is not None and is_sensitive_name(name) and value not in _EMPTY:
            return MASK
        if isinstance(value, str):
            return self._redact_str(value)
        if isinstance(value, Mapping):
            out: Any = {}
        elif isinstance(value, list | tuple):
            out = []
        else:
            return value
        redact_str = self._redact_str
        todo = [(value, out, 0)]
        pop = todo.pop
        push = todo.append
        while todo:
            source, target, depth = pop()
            if depth >= _MAX_WALK:
                raise RecursionError(f"a value nested over {_MAX_WALK} levels deep (a cycle?)")
            depth += 1
            if type(target) is list:
                append = target.append
                for v in source:
                    t = type(v)
                    if t is str:
                        append(redact_str(v))
                    elif t is int or t is float or v is None or t is bool:
                        append(v)
                    else:
                        append(_copy_into(v, redact_str, push, depth))
                continue
            for k, v in source.items():
                if (
                    (type(k) is str or isinstance(k, str))
                    and is_sensitive_name(k)
                    and v not in _EMPTY
                ):
                    target[k] = MASK
                    continue
                t = type(v)
                if t is str:
                    target[k] = redact_str(v)
                elif t is int or t is float or v is None or t is bool:
                    target[k] = v
                else:
                    target[k] = _copy_into(v, redact_str, push, depth)
        return out

    def leaves_plain(self, value: Any) -> bool:
        """Whether ``value`` is plain JSON data that :meth:`redact` returns exactly as it is.

        Plain: made only of ``dict`` with ``str`` keys, ``list``, ``str``, ``int``, ``bool``,
        ``None`` and finite ``float`` (exact types, so the copy ``redact`` makes has the same
        types and compares equal), with no one-key map whose key starts with ``$`` (the tagged
        JSON of transcripts would wrap it). Unchanged: no string holds a registered secret or
        ``eyJ``, and no sensitive key holds anything but ``None``, ``""``, ``[]``, ``{}`` or
        ``"***"``.

        ``True`` is a proof; ``False`` only means "redact it the slow way" (so does a value
        nested deeper than any input the limits let in). The transcript writer uses this to
        skip the redacting copy of values that have nothing to redact.
        """
        search = self._trie_search
        if search is None and self._secrets:
            pattern = self._pattern
            if pattern is None:
                pattern = self._secret_pattern()
            search = None if pattern is None else pattern.search
        # The top level here, nested containers in _plain: one call for a flat body.
        t = type(value)
        if t is not dict:
            return _plain(value, search, _PLAIN_DEPTH)
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
                if not _plain(v, search, _PLAIN_DEPTH):
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
        if self._trie_search is not None:
            assert self._trie is not None
            text = _trie_sub(self._trie, text)
        else:
            pattern = self._secret_pattern()
            if pattern is not None:
                text = pattern.sub(MASK, text)
        if "eyJ" in text:
            text = _JWT.sub("eyJ***", text)
        return text


def _copy_into(value: Any, redact_str: Callable[[str], str], push: Any, depth: int) -> Any:
    """``redact``'s copy of one value below the top: a string masked, a container's empty copy
    (queued with ``push`` to be filled), anything else as it is."""
    if isinstance(value, str):
        return redact_str(value)
    if isinstance(value, Mapping):
        out: Any = {}
    elif isinstance(value, list | tuple):
        out = []
    else:
        return value
    push((value, out, depth))
    return out


def _insert(trie: dict[str, Any], secret: str) -> None:
    if not secret:
        return  # only the alternation masks the empty secret
    node = trie
    for char in secret:
        child = node.get(char)
        if child is None:
            child = node[char] = {}
        node = child
    node[_END] = True


def _trie_search(trie: dict[str, Any], text: str) -> tuple[int, int] | None:
    """The leftmost (start, end) of a secret in ``text``, or None."""
    n = len(text)
    get = trie.get
    for i, char in enumerate(text):
        node = get(char)
        if node is None:
            continue
        # Written out (no call per candidate): the longest secret starting at i.
        end = -1
        j = i + 1
        while True:
            if _END in node:
                end = j
            if j == n:
                break
            node = node.get(text[j])
            if node is None:
                break
            j += 1
        if end >= 0:
            return i, end
    return None


def _trie_sub(trie: dict[str, Any], text: str) -> str:
    """``text`` with each secret replaced, as the longest-first alternation's ``sub`` does: the
    longest secret starting at the leftmost position that starts one, then on after it."""
    n = len(text)
    get = trie.get
    parts: list[str] = []
    done = 0  # text[:done] is in parts
    for i, char in enumerate(text):
        if i < done:
            continue
        node = get(char)
        if node is None:
            continue
        end = -1
        j = i + 1
        while True:
            if _END in node:
                end = j
            if j == n:
                break
            node = node.get(text[j])
            if node is None:
                break
            j += 1
        if end >= 0:
            parts.append(text[done:i])
            parts.append(MASK)
            done = end
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


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


#: leaves_plain follows containers this deep at most (one Python frame per level), then says no.
_PLAIN_DEPTH = 200


def _plain(value: Any, search: Callable[[str], Any] | None, budget: int) -> bool:
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
    if not budget:
        return False
    for v in items:
        t = type(v)
        if t is str:
            if "eyJ" in v or (search is not None and search(v) is not None):
                return False
        elif t is dict or t is list:
            if not _plain(v, search, budget - 1):
                return False
        elif not (v is None or t is int or t is bool or (t is float and _isfinite(v))):
            return False
    return True


def _plain_leaf(value: Any, t: type, search: Callable[[str], Any] | None) -> bool:
    if t is str:
        return "eyJ" not in value and (search is None or search(value) is None)
    return value is None or t is int or t is bool or (t is float and _isfinite(value))
