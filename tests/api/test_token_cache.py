"""The stub checks a token's signature once per token string while it has fewer than
``SEEN_TOKENS`` live ones: a run of 1,000 tries does not decode a token on every request."""

from __future__ import annotations

import jwt
import pytest

from supervisor_sim.api import TokenIssuer, _tokens


def test_two_thousand_live_tokens_are_each_decoded_once(monkeypatch: pytest.MonkeyPatch):
    """2,000 tokens used three times each: 2,000 signature checks (clearing all at 1,024
    made it 6,000)."""
    issuer = TokenIssuer()
    tokens = [issuer.issue(f"ti-{i}") for i in range(2000)]
    decodes = 0
    real = jwt.decode

    def counting(*args, **kwargs):
        nonlocal decodes
        decodes += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    for _ in range(3):
        for token in tokens:
            assert issuer.validate(token)["sub"].startswith("ti-")
    assert decodes == 2000


def test_past_the_cap_the_oldest_token_is_forgotten_first(monkeypatch: pytest.MonkeyPatch):
    """Over the cap only the oldest entry goes: the newest tokens stay remembered."""
    monkeypatch.setattr(_tokens, "SEEN_TOKENS", 4)
    issuer = TokenIssuer()
    tokens = [issuer.issue(f"ti-{i}") for i in range(6)]
    for token in tokens:
        issuer.validate(token)
    assert list(issuer._seen) == tokens[2:]


def test_a_remembered_token_that_expired_is_refused():
    """Remembering a signature never skips the expiry check."""
    issuer = TokenIssuer(valid_for=1)
    token = issuer.issue("ti-x")
    claims = issuer.validate(token)
    issuer._seen[token] = {**claims, "exp": claims["exp"] - 3600}
    with pytest.raises(jwt.ExpiredSignatureError):
        issuer.validate(token)
