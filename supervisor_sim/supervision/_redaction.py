"""Keeping secrets out of everything a session records or shows.

What a session records comes from its runtime or its Execution API: a violation quotes what
was wrong, a frame's type and map keys are the runtime's, an HTTP path names the variable asked
for. The session's ``SecretsMasker`` knows every secret (connection passwords and extras,
sensitive variables, ``MaskSecret`` values) and masks strings; the ``Redactor`` applies it where
strings alone do not reach — map keys, msgpack ``bin`` values, raw bytes — so the journal hands
its sinks (console, ``--json``, transcript, HTML, summary) nothing they could forget to mask.
docs/reliability.md ("Secrets") lists what is masked where.
"""

from __future__ import annotations

from typing import Any

from ..protocol import SecretsMasker

__all__ = ["Redactor"]

#: Map keys known to hold no secret, for as many secrets as the masker had when they were
#: checked. Bounded: the keys come from the runtime and need not repeat.
_MAX_CLEAN_KEYS = 4096


class Redactor:
    """The session's masker, for strings, map keys, bytes and whole records.

    ``keep_received`` (``--no-redact``): the records of what the runtime and the API sent —
    frames, HTTP exchanges, the bytes a violation consumed — are kept as they came. What the
    supervisor says about them (violation messages, notes, errors) is masked all the same, and
    so are log lines, which Airflow's supervisor masks before anything sees them.
    """

    def __init__(self, masker: SecretsMasker, *, keep_received: bool = False) -> None:
        self.masker = masker
        self.keep_received = keep_received
        self._clean_keys: set[Any] = set()
        self._clean_for = 0  # how many secrets the masker had when _clean_keys was filled

    @property
    def redacts_received(self) -> bool:
        """Whether records of received data are masked (not ``--no-redact``)."""
        return not self.keep_received

    def text(self, text: str) -> str:
        """``text`` with every secret and JWT masked."""
        return self.masker.redact(text)

    def text_holds_secret(self, text: str) -> bool:
        """Whether ``text`` holds a secret or a JWT's start (what ``text()`` would mask); the
        answer for a string seen before is remembered until the masker learns a secret."""
        return self.hides_secret(text)

    def holds_secret(self, data: bytes | bytearray) -> bool:
        """Whether ``data`` holds a secret in one of its UTF-8 stretches, or a JWT's start.

        Exact for msgpack, whose strings, keys and ``bin`` values are their bytes as they are;
        a JSON text can spell a character as an escape, which only its parsed value shows."""
        if b"eyJ" in data:
            return True
        if not len(self.masker):
            return False
        return not self.masker.leaves_plain(bytes(data).decode("utf-8", "surrogateescape"))

    def hides_secret(self, value: Any) -> bool:
        """Whether a secret (or a JWT's start) is where masking strings does not reach: in a map
        key or a ``bytes`` value of ``value``, or ``value`` itself when it is a string. A sink
        that masks strings (the transcript writer) then needs ``value()``'s copy instead.

        One walk; the keys of a map whose keys were all seen before cost one subset test."""
        t = type(value)
        if t is str:
            return value not in self._fresh_keys() and self.key(value) is not value
        if t is not dict and t is not list:
            return (t is bytes or t is bytearray) and self.holds_secret(value)
        clean = self._fresh_keys()
        todo = [value]
        pop = todo.pop
        push = todo.append
        while todo:
            node = pop()
            if type(node) is dict:
                if not node.keys() <= clean:
                    for k in node:
                        if k not in clean and self.key(k) is not k:
                            return True
                items: Any = node.values()
            else:
                items = node
            for v in items:
                tv = type(v)
                if tv is str or tv is int or v is None or tv is bool or tv is float:
                    continue
                if tv is dict or tv is list:
                    push(v)
                elif (tv is bytes or tv is bytearray) and self.holds_secret(v):
                    return True
        return False

    def request_hides_secret(self, kind: Any, body: Any, carrier: Any) -> bool:
        """``hides_secret`` for a request: its type (outside the body in a frame record), its
        body and its context carrier. A flat body of plain values whose keys were all seen
        before, the usual request, costs one subset test and one look at each value."""
        clean = self._fresh_keys()
        if kind is not None and kind not in clean and self.hides_secret(kind):
            return True
        if carrier is not None and (
            self.hides_secret(carrier) or not self.masker.leaves_plain(carrier)
        ):
            return True  # rare, and shown by no sink that masks strings: masked whole here
        if type(body) is dict and body.keys() <= clean:
            for v in body.values():
                tv = type(v)
                if not (tv is str or tv is int or v is None or tv is bool or tv is float):
                    return self.hides_secret(body)
            return False
        return self.hides_secret(body)

    def bytes(self, data: bytes) -> bytes:
        """``data`` with every secret in its UTF-8 stretches masked; all other bytes are kept."""
        text = data.decode("utf-8", "surrogateescape")
        clean = self.masker.redact(text)
        return data if clean == text else clean.encode("utf-8", "surrogateescape")

    def value(self, value: Any) -> Any:
        """A copy of ``value`` masked as the masker masks it (strings; whatever is under a
        sensitive key, whole), and in map keys and ``bytes`` values too."""
        value = self.masker.redact(value)
        t = type(value)
        if t is bytes or t is bytearray:
            return self.bytes(bytes(value))
        if t is not dict and t is not list:
            return value
        # masker.redact made fresh containers: they are ours to change in place.
        todo: list[Any] = [value]
        pop = todo.pop
        push = todo.append
        while todo:
            node = pop()
            if type(node) is list:
                for i, v in enumerate(node):
                    tv = type(v)
                    if tv is dict or tv is list:
                        push(v)
                    elif tv is bytes or tv is bytearray:
                        node[i] = self.bytes(bytes(v))
                continue
            renamed = None
            for k, v in node.items():
                tv = type(v)
                if tv is dict or tv is list:
                    push(v)
                elif tv is bytes or tv is bytearray:
                    node[k] = self.bytes(bytes(v))
                clean = self.key(k)
                if clean is not k:
                    renamed = True
            if renamed:
                items = [(self.key(k), v) for k, v in node.items()]
                node.clear()
                node.update(items)
        return value

    def _fresh_keys(self) -> set[Any]:
        """The keys known clean, forgotten whenever the masker has learnt a secret."""
        n = len(self.masker)
        if n != self._clean_for:
            self._clean_keys.clear()
            self._clean_for = n
        return self._clean_keys

    def key(self, key: Any) -> Any:
        """A map key, masked (a string or bytes key; any other key is returned as it is)."""
        masker = self.masker
        self._fresh_keys()
        t = type(key)
        if t is not str and t is not bytes:
            return key
        if key in self._clean_keys:
            return key
        clean = masker.redact(key) if t is str else self.bytes(key)
        if clean == key:
            if len(self._clean_keys) < _MAX_CLEAN_KEYS:
                self._clean_keys.add(key)
            return key
        return clean
