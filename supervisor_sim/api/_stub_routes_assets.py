"""Stub routes for assets, asset events and the asset state store (execution-api.md §7-§8).

``assets/by-{name,uri,alias}``, ``asset-events/by-asset[-alias]`` and
``store/asset/by-{name,uri}/{value,clear}``, following Airflow 3.3's ``assets.py``,
``asset_events.py`` and ``asset_state_store.py``.
"""

from __future__ import annotations

import json
from typing import Any

from ._store import StubStore
from ._stub_base import _HTTPError, _json, _no_content, _Request, _Response
from ._validation import _Field, _model, _state_value

_PUT_FIELDS = (_Field("value", _state_value, True),)


def _public(asset: dict[str, Any]) -> dict[str, Any]:
    """An ``AssetResponse``: name, uri, group, extra."""
    return {k: asset[k] for k in ("name", "uri", "group", "extra")}


class AssetRoutes:
    """Handlers (``_h_*``) for assets, asset events and the asset state store."""

    store: StubStore

    # -- assets ------------------------------------------------------------------------------

    def _h_asset_by_name(self, req: _Request) -> _Response:
        name = req.q_str("name", required=True)
        req.validated()
        asset = self.store.get_asset(name=name)
        if asset is None:
            raise _HTTPError(
                404, {"reason": "not_found", "message": f"Asset with name {name} not found"}
            )
        return _json(200, _public(asset))

    def _h_asset_by_uri(self, req: _Request) -> _Response:
        uri = req.q_str("uri", required=True)
        req.validated()
        asset = self.store.get_asset(uri=uri)
        if asset is None:
            raise _HTTPError(
                404, {"reason": "not_found", "message": f"Asset with URI {uri} not found"}
            )
        return _json(200, _public(asset))

    def _h_assets_by_alias(self, req: _Request) -> _Response:
        alias_name = req.q_str("alias_name", required=True)
        req.validated()
        assert alias_name is not None
        return _json(200, [_public(a) for a in self.store.assets_by_alias(alias_name)])

    # -- asset events ------------------------------------------------------------------------

    def _event_filters(self, req: _Request) -> dict[str, Any]:
        return {
            "after": req.q_datetime("after"),
            "before": req.q_datetime("before"),
            "ascending": req.q_bool_default("ascending", True),
            "limit": req.q_int("limit", None),
        }

    def _h_asset_events_by_asset(self, req: _Request) -> _Response:
        # Both are required parameters that may be empty (the SDK sends ``name=&uri=...``).
        name = req.q_str("name", required=True)
        uri = req.q_str("uri", required=True)
        filters = self._event_filters(req)
        req.validated()
        if not name and not uri:
            raise _HTTPError(
                400,
                {"reason": "Missing parameter", "message": "name and uri cannot both be None"},
            )
        events = self.store.asset_events(name=name or None, uri=uri or None, **filters)
        return _json(200, {"asset_events": events})

    def _h_asset_events_by_alias(self, req: _Request) -> _Response:
        name = req.q_str("name", required=True)
        filters = self._event_filters(req)
        req.validated()
        assert name is not None
        return _json(200, {"asset_events": self.store.asset_events(alias_name=name, **filters)})

    # -- asset state store -------------------------------------------------------------------

    def _asset_id(self, req: _Request) -> int:
        """The active asset the ``name`` or ``uri`` query names (404 when there is none)."""
        by = req.params["by"]
        ident = req.q_str(by, required=True, min_length=1)
        if req.method != "DELETE" or req.params["op"] == "value":
            req.q_str("key", required=True, min_length=1)
        if req.method == "PUT":
            _model(req.body, _PUT_FIELDS, ("body",), req.errors)
        req.validated()
        asset = self.store.get_asset(**{by: ident})
        if asset is None:
            raise _HTTPError(
                404, {"reason": "not_found", "message": f"Asset with {by}={ident!r} not found"}
            )
        return asset["id"]

    def _h_asset_store_get(self, req: _Request) -> _Response:
        asset_id = self._asset_id(req)
        key = req.query_value("key") or ""
        value = self.store.get_asset_state(asset_id, key)
        if value is None:
            raise _HTTPError(
                404,
                {"reason": "not_found", "message": f"Asset state store key {key!r} not found"},
            )
        return _json(200, {"value": json.loads(value)})

    def _h_asset_store_put(self, req: _Request) -> _Response:
        asset_id = self._asset_id(req)
        key = req.query_value("key") or ""
        self.store.set_asset_state(asset_id, key, json.dumps(req.body["value"]), req.now)
        return _no_content()

    def _h_asset_store_delete(self, req: _Request) -> _Response:
        asset_id = self._asset_id(req)
        # ``value`` deletes one key; ``clear`` every key of the asset.
        key = req.query_value("key") if req.params["op"] == "value" else None
        self.store.delete_asset_state(asset_id, key)
        return _no_content()
