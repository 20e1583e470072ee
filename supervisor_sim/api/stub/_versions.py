"""Cadwyn's API versions: which version a request's ``Airflow-API-Version`` header picks."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

__all__ = ["API_VERSIONS", "BASELINE_VERSION", "LATEST_VERSION", "pick_version"]

#: Every Execution API version of Airflow 3.3 (Cadwyn bundle), oldest first.
API_VERSIONS = (
    "2025-04-11",
    "2025-04-28",
    "2025-05-20",
    "2025-08-10",
    "2025-09-23",
    "2025-10-27",
    "2025-11-05",
    "2026-04-06",
    "2026-06-30",
)
BASELINE_VERSION = API_VERSIONS[0]
LATEST_VERSION = API_VERSIONS[-1]
#: Well-formed header values seen -> the version Cadwyn routes them to (every request of a
#: client sends the same header).
_PICKS: dict[str, str] = {}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def pick_version(raw: str | None) -> tuple[str | None, list[dict[str, Any]]]:
    """The version a header value routes to (the closest one not newer than the requested
    date; None before the first) and the 422 errors of a malformed value."""
    if raw is None:
        return LATEST_VERSION, []
    picked = _PICKS.get(raw)
    if picked is not None:
        return picked, []
    try:
        valid = bool(_DATE.fullmatch(raw)) and bool(date.fromisoformat(raw))
    except ValueError:
        valid = False
    errors: list[dict[str, Any]] = []
    if not valid:
        # shape verified against real Airflow in the differential test tier
        reason = "input is too short" if len(raw) < 10 else "invalid date format"
        errors.append(
            {
                "type": "date_from_datetime_parsing",
                "loc": ["header", "Airflow-API-Version"],  # FastAPI names the declared alias
                "msg": f"Input should be a valid date or datetime, {reason}",
                "input": raw,
                "ctx": {"error": reason},
            }
        )
    matched = None
    for known in API_VERSIONS:  # text order is date order for YYYY-MM-DD
        if known <= raw:
            matched = known
    if valid and matched is not None and len(_PICKS) < 64:
        _PICKS[raw] = matched
    return matched, errors
