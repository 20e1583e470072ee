"""Routes for assets, asset events and the asset state store.

``assets/by-{name,uri,alias}``, ``asset-events/by-asset[-alias]`` and
``store/asset/by-{name,uri}/{value,clear}``, following Airflow 3.3's ``assets.py``,
``asset_events.py`` and ``asset_state_store.py``.
"""

from __future__ import annotations

import json
from typing import Any

from ..store import StubStore
from ._http import HTTPError, Response, json_response, no_content
from ._request import Request
from ._validation import Field, model, state_value

__all__ = [
    "asset_by_name",
    "asset_by_uri",
    "asset_events_by_alias",
    "asset_events_by_asset",
    "asset_store_delete",
    "asset_store_get",
    "asset_store_put",
    "assets_by_alias",
]

_PUT_FIELDS = (Field("value", state_value, True),)


def _public(asset: dict[str, Any]) -> dict[str, Any]:
    """An ``AssetResponse``: name, uri, group, extra."""
    return {k: asset[k] for k in ("name", "uri", "group", "extra")}


# -- assets ------------------------------------------------------------------------------------


def asset_by_name(store: StubStore, req: Request) -> Response:
    name = req.q_str("name", required=True)
    req.validated()
    asset = store.assets.get(name=name)
    if asset is None:
        raise HTTPError(
            404, {"reason": "not_found", "message": f"Asset with name {name} not found"}
        )
    return json_response(200, _public(asset))


def asset_by_uri(store: StubStore, req: Request) -> Response:
    uri = req.q_str("uri", required=True)
    req.validated()
    asset = store.assets.get(uri=uri)
    if asset is None:
        raise HTTPError(404, {"reason": "not_found", "message": f"Asset with URI {uri} not found"})
    return json_response(200, _public(asset))


def assets_by_alias(store: StubStore, req: Request) -> Response:
    alias_name = req.q_str("alias_name", required=True)
    req.validated()
    assert alias_name is not None
    return json_response(200, [_public(a) for a in store.assets.by_alias(alias_name)])


# -- asset events ------------------------------------------------------------------------------


def _event_filters(req: Request) -> dict[str, Any]:
    return {
        "after": req.q_datetime("after"),
        "before": req.q_datetime("before"),
        "ascending": req.q_bool_default("ascending", True),
        "limit": req.q_int("limit", None),
    }


def asset_events_by_asset(store: StubStore, req: Request) -> Response:
    # Both are required parameters that may be empty (the SDK sends ``name=&uri=...``).
    name = req.q_str("name", required=True)
    uri = req.q_str("uri", required=True)
    filters = _event_filters(req)
    req.validated()
    if not name and not uri:
        raise HTTPError(
            400,
            {"reason": "Missing parameter", "message": "name and uri cannot both be None"},
        )
    events = store.assets.events(name=name or None, uri=uri or None, **filters)
    return json_response(200, {"asset_events": events})


def asset_events_by_alias(store: StubStore, req: Request) -> Response:
    name = req.q_str("name", required=True)
    filters = _event_filters(req)
    req.validated()
    assert name is not None
    return json_response(200, {"asset_events": store.assets.events(alias_name=name, **filters)})


# -- asset state store -------------------------------------------------------------------------


def _asset_id(store: StubStore, req: Request) -> int:
    """The active asset the ``name`` or ``uri`` query names (404 when there is none)."""
    by = req.params["by"]
    ident = req.q_str(by, required=True, min_length=1)
    if req.method != "DELETE" or req.params["op"] == "value":
        req.q_str("key", required=True, min_length=1)
    if req.method == "PUT":
        model(req.body, _PUT_FIELDS, ("body",), req.errors)
    req.validated()
    asset = store.assets.get(name=ident) if by == "name" else store.assets.get(uri=ident)
    if asset is None:
        raise HTTPError(
            404, {"reason": "not_found", "message": f"Asset with {by}={ident!r} not found"}
        )
    asset_id: int = asset["id"]
    return asset_id


def asset_store_get(store: StubStore, req: Request) -> Response:
    asset_id = _asset_id(store, req)
    key = req.query_value("key") or ""
    value = store.state_stores.get_asset(asset_id, key)
    if value is None:
        raise HTTPError(
            404,
            {"reason": "not_found", "message": f"Asset state store key {key!r} not found"},
        )
    return json_response(200, {"value": json.loads(value)})


def asset_store_put(store: StubStore, req: Request) -> Response:
    asset_id = _asset_id(store, req)
    key = req.query_value("key") or ""
    store.state_stores.set_asset(asset_id, key, json.dumps(req.body["value"]), req.now)
    return no_content()


def asset_store_delete(store: StubStore, req: Request) -> Response:
    asset_id = _asset_id(store, req)
    # ``value`` deletes one key; ``clear`` every key of the asset.
    key = req.query_value("key") if req.params["op"] == "value" else None
    store.state_stores.delete_asset(asset_id, key)
    return no_content()
