"""The lax-coercion core (``protocol.lax_*``) against pydantic 2 itself, as Airflow runs it.

Every row of the table is validated twice: by our core, and by pydantic in the Airflow venv
(``.cache/airflow-venv``, built by tools/airflow_venv.sh), in one subprocess for the whole
table. Where pydantic takes a value we must take it and give the same value; where it refuses
one we must refuse it with the same error type (and, but for unparseable datetime and duration
strings, the same message). The venv missing, the test is skipped: nothing else here needs Airflow.
"""

from __future__ import annotations

import pickle
import subprocess
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from supervisor_sim.protocol import (
    LaxError,
    lax_bool,
    lax_datetime,
    lax_duration,
    lax_float,
    lax_int,
    lax_str,
)

pytestmark = pytest.mark.contract

AIRFLOW_PYTHON = Path(__file__).resolve().parents[2] / ".cache" / "airflow-venv" / "bin" / "python"

CORE = {
    "str": lax_str,
    "int": lax_int,
    "float": lax_float,
    "bool": lax_bool,
    "datetime": lax_datetime,
    "timedelta": lax_duration,
}

WHITESPACE = [" 5 ", "\t5\n", "\u30005\u3000", "\xa05", " -5.00 ", " 5.5 ", " 1e3 "]
TABLE: dict[str, list[Any]] = {
    "str": ["", " a ", "x", 5, 5.0, True, None, [], {}],
    "int": [
        *WHITESPACE,
        *["5", "+5", "-5", "05", "0005", "-0", "5.0", "5.00", "-5.0", "1_000", "1_000.0"],
        *["99999999999999999999", "5.5", "5.10", "5.", ".0", "5.0_0", "1__000", "_1000"],
        *["1000_", "+_1", "", " ", "-", "+", "0x10", "1e3", "5e0", "\u0665"],
        *[5, 0, -7, True, False, 5.0, -0.0, 5.5, float("inf"), float("nan"), None, []],
    ],
    "float": [
        *WHITESPACE,
        *["5.5", "5", "1_0", "1_0.5", "inf", "-inf", "+inf", "nan", "-nan", "Infinity"],
        *["iNf", "1e3", ".5", "5.", "", " ", "0x10", "1__0", "_1", "1e", "\u0661"],
        *[5, 5.5, True, float("inf"), None, []],
    ],
    "bool": [
        *["true", "TRUE", "True", "tRuE", "yes", "Yes", "on", "ON", "t", "T", "y", "1"],
        *["false", "no", "off", "f", "n", "0", "OFF"],
        *[" true ", "true\n", " 1", "1 ", "", "maybe", "2"],
        *[True, False, 1, 0, 2, -1, 1.0, 0.0, -0.0, 2.0, 0.5, 1.5, None, []],
    ],
    "datetime": [
        *["2026-01-01T00:00:00Z", "2026-01-01 00:00:00Z", "2026-01-01t00:00:00z"],
        *["2026-01-01T00:00Z", "2026-01-01T00:00:00+01:00", "2026-01-01T00:00:00+0100"],
        *["2026-01-01T00:00:00-00:00", "2026-01-01T00:00:00+23:59", "2026-01-01T12:30"],
        *["2026-01-01T00:00:00.5+01:00", "2026-01-01T00:00:00,5Z", "2026-01-01"],
        *["2026-01-01T00:00:00.123456789Z", "2026-01-01T00:00:00.1234565Z"],
        *["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2026-01-01T00:00:00"],
        *["1700000000", "+1700000000", "-1", "0", "2026", "1700000000.5", "1700000000."],
        *["17000000000", "20000000000", "20000000001"],
        # whitespace, and what is not RFC 3339
        *[" 2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z ", " 1700000000", "1700000000 "],
        *["2026-01-01T00Z", "2026-01-01T00:00:00+01", "2026-01-01T00:00:00+24:00"],
        *["2026-01-01T00:00:00+00:60", "2026-01-01T00:00:00 Z", "2026-01-01T0:00:00Z"],
        *["2026-01-01Z", "20260101T000000Z", "2026-1-1T00:00:00Z", "2026-13-01T00:00:00Z"],
        *["2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:60Z"],
        *["2026-01-01T00:00:00.Z", "2026-01-01T00:00:00UTC", "2026-01-01Tjunk"],
        *["x", "", "1e9", "-1e11", "\uff11\uff17", "1700000000.5.5"],
        *[1700000000, 1700000000.5, 1700000000000, 20000000001, -1, 0, 1e20, -1e20],
        *[253402300799999, 253402300800000, -62135596800000],
        *[True, None, []],
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1),
    ],
    "timedelta": [
        *["PT30S", "P1D", "P1W", "PT1H30M", "PT1.5S", "P1.5D", "P1DT1H1M1.5S", "P1DT"],
        *["-PT1S", "+PT1S", "-P1D", "P0D", "PT0.5M", "P1W1D"],
        *["P1Y", "P1M", "P1Y35D", "P1.5Y", "P1Y2M3W4DT5H6M7.5S", "-P", "PT0.0000001S"],
        *[" PT30S", "PT30S ", "30", "30.5", " 30", "P", "PT", "P-1D", "PTS", "x", ""],
        *[30, 30.5, 0, True, None, []],
        timedelta(seconds=5),
    ],
}

#: Where we knowingly differ (see ``protocol._lax``): pydantic takes these, we refuse them.
KNOWN_DIFFERENCES: list[tuple[str, Any]] = [
    ("str", b"x"),
    ("int", b"5"),
    ("float", b"5"),
    ("timedelta", "P1D1W"),
    ("timedelta", "00:00:30"),
    ("timedelta", "1 day, 0:00:00"),
]

#: Errors whose message names a reason pydantic gives more precisely than we do.
_REASON_APPROXIMATED = {"datetime_from_date_parsing", "time_delta_parsing"}

_ORACLE = textwrap.dedent(
    """
    import pickle, sys
    from datetime import datetime, timedelta, timezone
    import pydantic

    def plain(value):  # pydantic_core's TzInfo does not unpickle without pydantic
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.replace(tzinfo=timezone(value.utcoffset()))
        return value

    adapters = {
        "str": str, "int": int, "float": float, "bool": bool,
        "datetime": datetime, "timedelta": timedelta,
    }
    adapters = {k: pydantic.TypeAdapter(t) for k, t in adapters.items()}
    out = []
    for kind, value in pickle.load(sys.stdin.buffer):
        try:
            out.append((True, plain(adapters[kind].validate_python(value)), None))
        except pydantic.ValidationError as exc:
            error = exc.errors()[0]
            out.append((False, error["type"], error["msg"]))
    sys.stdout.buffer.write(pickle.dumps(out, protocol=4))
    """
)


@pytest.fixture(scope="module")
def pydantic_answers() -> dict[tuple[str, str], tuple[bool, Any, str | None]]:
    """pydantic's verdict on every row (and on the known differences), by (kind, repr)."""
    if not AIRFLOW_PYTHON.exists():
        pytest.skip(f"no Airflow venv at {AIRFLOW_PYTHON} (tools/airflow_venv.sh builds it)")
    rows = [(kind, value) for kind, values in TABLE.items() for value in values]
    rows += KNOWN_DIFFERENCES
    proc = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", _ORACLE],
        input=pickle.dumps(rows, protocol=4),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    answers = pickle.loads(proc.stdout)
    return {
        (kind, repr(value)): answer for (kind, value), answer in zip(rows, answers, strict=True)
    }


def _ours(kind: str, value: Any) -> tuple[bool, Any, str | None]:
    try:
        return True, CORE[kind](value), None
    except LaxError as exc:
        return False, exc.type, exc.message


def _same_value(ours: Any, theirs: Any) -> bool:
    if isinstance(theirs, datetime):
        return ours == theirs and ours.utcoffset() == theirs.utcoffset()
    if isinstance(theirs, float) and theirs != theirs:  # nan
        return isinstance(ours, float) and ours != ours
    return type(ours) is type(theirs) and ours == theirs


@pytest.mark.parametrize(
    ("kind", "value"),
    [(kind, value) for kind, values in TABLE.items() for value in values],
    ids=lambda v: repr(v),
)
def test_the_core_coerces_like_pydantic(
    kind: str, value: Any, pydantic_answers: dict[tuple[str, str], Any]
) -> None:
    """Each value is taken (to the same value) or refused (with the same error) as pydantic
    2 in lax mode does, whitespace included."""
    theirs = pydantic_answers[(kind, repr(value))]
    ours = _ours(kind, value)
    if theirs[0]:
        assert ours[0], f"pydantic takes {kind} {value!r} -> {theirs[1]!r}; we refuse: {ours}"
        assert _same_value(ours[1], theirs[1]), (ours[1], theirs[1])
        return
    assert not ours[0], f"pydantic refuses {kind} {value!r} ({theirs[1]}); we give {ours[1]!r}"
    assert ours[1] == theirs[1]
    if theirs[1] not in _REASON_APPROXIMATED:
        assert ours[2] == theirs[2]


@pytest.mark.parametrize(("kind", "value"), KNOWN_DIFFERENCES, ids=lambda v: repr(v))
def test_known_differences_are_still_differences(
    kind: str, value: Any, pydantic_answers: dict[tuple[str, str], Any]
) -> None:
    """The documented differences are real: pydantic takes the value, the core refuses it."""
    assert pydantic_answers[(kind, repr(value))][0]
    assert not _ours(kind, value)[0]
