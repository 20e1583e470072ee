"""A real Airflow Execution API: an httpx client with Airflow's TLS options, and task tokens.

Airflow hands its supervisor a ``workload`` JWT for the task instance; the supervisor exchanges
it for an ``execution`` token through ``Refreshed-API-Token`` on ``PATCH .../run``. To drive a
task on a local Airflow whose ``[api_auth] jwt_secret`` you know, ``mint_token`` signs the same
claims Airflow's ``JWTGenerator`` does.
"""

from __future__ import annotations

import ssl
import time
import uuid

import httpx

__all__ = ["DEFAULT_AUDIENCE", "mint_token", "real_api_client"]

DEFAULT_AUDIENCE = "urn:airflow.apache.org:task"


def mint_token(
    secret: str,
    ti_id: str,
    *,
    scope: str = "workload",
    audience: str = DEFAULT_AUDIENCE,
    valid_for: int = 600,
    issuer: str | None = None,
) -> str:
    """An HS512 task token for ``ti_id``, as Airflow's JWTGenerator signs it with a secret."""
    import jwt  # on first use: PyJWT loads cryptography when it is installed

    now = int(time.time())
    claims = {
        "jti": uuid.uuid4().hex,
        "sub": str(ti_id),
        "scope": scope,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + valid_for,
    }
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS512", headers={"kid": "not-used"})


def real_api_client(
    base_url: str,
    *,
    ca_file: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
    verify: bool = True,
) -> httpx.AsyncClient:
    """An httpx client for a real Execution API base URL (``http(s)://host:port/execution/``).

    Connection limits follow Airflow's supervisor (1 keep-alive, 10 connections). ``ca_file``
    adds a trusted CA; ``client_cert``/``client_key`` enable mTLS and must come together.
    """
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"not an http(s) URL with a host: {base_url!r}")
    if bool(client_cert) != bool(client_key):
        raise ValueError("--client-cert and --client-key must be given together")
    tls: ssl.SSLContext | bool = verify
    if verify and (ca_file or client_cert):
        context = ssl.create_default_context(cafile=ca_file)
        if client_cert:
            context.load_cert_chain(client_cert, client_key)
        tls = context
    return httpx.AsyncClient(
        base_url=str(url).rstrip("/") + "/",
        verify=tls,
        limits=httpx.Limits(max_keepalive_connections=1, max_connections=10),
    )
