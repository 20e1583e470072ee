"""Task JWTs minted and checked the way Airflow's shared-secret setup does it.

Airflow signs with HS512 when ``[api_auth] jwt_secret`` is set: claims ``jti``, ``sub`` (the TI
id), ``scope`` (``workload`` or ``execution``), ``aud``, ``iat``, ``nbf`` and ``exp`` as integer
epoch seconds, JOSE header ``kid: "not-used"``. Validation requires
``aud``, ``exp`` and ``iat`` with 10 s leeway.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any, Literal

__all__ = ["DEFAULT_AUDIENCE", "TokenIssuer"]

DEFAULT_AUDIENCE = "urn:airflow.apache.org:task"
Scope = Literal["workload", "execution"]


#: Token strings whose signature was checked, remembered (~1 KB each, with their claims).
SEEN_TOKENS = 8192


class TokenIssuer:
    """Mints and validates task tokens with one shared secret."""

    algorithm = "HS512"
    leeway = 10

    def __init__(
        self,
        secret: str | None = None,
        audience: str = DEFAULT_AUDIENCE,
        valid_for: float = 600,
    ) -> None:
        # 64 random bytes: PyJWT warns about shorter HS512 keys, and Airflow advises >= 64.
        self.secret = secret if secret is not None else secrets.token_hex(64)
        # Airflow accepts a comma-separated audience list; the first one is used when minting.
        self.audiences = [a.strip() for a in audience.split(",") if a.strip()]
        self.audience = self.audiences[0]
        self.valid_for = valid_for
        self._seen: dict[str, dict[str, Any]] = {}

    def issue(
        self, ti_id: str, scope: Scope = "workload", *, valid_for: float | None = None
    ) -> str:
        """A token for ``ti_id`` with the given scope; ``valid_for`` overrides the lifetime."""
        return self._encode({"sub": str(ti_id), "scope": scope}, valid_for)

    def reissue(self, claims: dict[str, Any]) -> str:
        """A fresh token with the same claims and new ``jti``/``iat``/``nbf``/``exp``.

        This is what Airflow's ``JWTReissueMiddleware`` sends back as ``Refreshed-API-Token``.
        """
        extras = {k: v for k, v in claims.items() if k not in ("jti", "iat", "nbf", "exp", "aud")}
        return self._encode(extras, None)

    def validate(self, token: str) -> dict[str, Any]:
        """Decode and check ``token``; raise ``jwt.InvalidTokenError`` when it is not valid.

        The signature of a given token string is checked once and remembered (the stub sees the
        same token on every heartbeat); the time claims are checked on every call, with PyJWT's
        rules, so an expired token is refused even when remembered.
        """
        import jwt  # on first use: PyJWT loads cryptography when it is installed

        claims = self._seen.get(token)
        if claims is None:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[self.algorithm],
                audience=self.audiences,
                leeway=self.leeway,
                options={"require": ["aud", "exp", "iat"]},
            )
            if len(self._seen) >= SEEN_TOKENS:
                # The oldest goes, not all: a run-dag of 1,000 tries holds 1,000 live tokens,
                # and clearing at 1,024 had nearly every request decode its token again.
                del self._seen[next(iter(self._seen))]
            self._seen[token] = claims
        else:
            now = time.time()
            if claims["exp"] <= now - self.leeway:
                raise jwt.ExpiredSignatureError("Signature has expired")
            if claims.get("nbf", 0) > now + self.leeway or claims["iat"] > now + self.leeway:
                raise jwt.ImmatureSignatureError("The token is not yet valid")
        return dict(claims)

    @staticmethod
    def needs_refresh(claims: dict[str, Any], now: float) -> bool:
        """Airflow's sliding-refresh rule: at most max(20% of the lifetime, 30 s) left."""
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, (int, float)) or not isinstance(iat, (int, float)):
            return False
        return exp - now <= max(int(0.2 * (exp - iat)), 30)

    def _encode(self, extras: dict[str, Any], valid_for: float | None) -> str:
        import jwt  # on first use: PyJWT loads cryptography when it is installed

        now = int(time.time())
        lifetime = self.valid_for if valid_for is None else valid_for
        # The generator's own claims win over the extras, as in Airflow's JWTGenerator.
        claims = {
            **extras,
            "jti": uuid.uuid4().hex,
            "aud": self.audience,
            "nbf": now,
            "iat": now,
            "exp": now + int(lifetime),
        }
        return jwt.encode(
            claims, self.secret, algorithm=self.algorithm, headers={"kid": "not-used"}
        )
