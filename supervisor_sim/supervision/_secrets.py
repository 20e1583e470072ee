"""Which secrets a session learns, and from what: the same with the stub and a real API.

Airflow's supervisor registers a secret with its masker when the runtime asks it to
(``MaskSecret``) and when it hands one over (a connection's password and extra, the value of a
variable whose name looks sensitive). Here each is learnt from what crossed the wire, before
anything records it: the runtime's request before its frame is recorded (``learn_from_request``),
the API's answer before its exchange is (``learn_from_exchange``). So no record holds a secret
the masker does not know yet, whether the API answers inline (the stub, whose records a session
holds until the reply is written) or over the network (``--api-url``, whose records are
delivered as they happen).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..protocol import SecretsMasker, is_sensitive_name

if TYPE_CHECKING:
    from ..api import Exchange

__all__ = ["learn_from_exchange", "learn_from_request"]


def learn_from_request(masker: SecretsMasker, body: Any) -> None:
    """Register what a runtime's request body asks to be masked: a ``MaskSecret`` value, or the
    value a ``PutVariable`` sets for a sensitive name. Valid or not: masking more is safe."""
    if type(body) is not dict:
        return
    kind = body.get("type")
    if kind == "MaskSecret":
        masker.add(body.get("value"))
    elif kind == "PutVariable":
        key = body.get("key")
        if isinstance(key, str) and is_sensitive_name(key):
            masker.add(body.get("value"))


def learn_from_exchange(masker: SecretsMasker, exchange: Exchange) -> None:
    """Register the secrets an Execution API exchange carries, as Airflow's supervisor does: a
    connection's password and extra, a sensitive variable's value (read or written)."""
    path: str = exchange.path
    if "/connections/" in path and exchange.status == 200:
        try:
            data = json.loads(exchange.response_body)
        except ValueError:
            return
        if isinstance(data, dict):
            masker.add(data.get("password"))
            masker.add(data.get("extra"))
    elif "/variables/" in path and not path.endswith("/variables/keys"):
        key = path.rsplit("/variables/", 1)[1]  # already decoded (the URL's path)
        if not is_sensitive_name(key):
            return
        raw = exchange.response_body if exchange.status == 200 else exchange.request_body
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            return
        if isinstance(data, dict):
            masker.add(data.get("value") if "value" in data else data.get("val"))
