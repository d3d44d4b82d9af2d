"""Pure transforms of the API's answers (no I/O): answer -> typed records.

A record is a plain dict keyed by the API's field names, with every catalog field
present: numbers as the API sent them, one type per field (the API sends a whole amount
as an integer, ``596881053450``: amounts and ratios are floats, share counts integers when
whole, as the history store's typed columns keep them, so a value reads the same cold,
from the cache file or from the desk), ``last_data_date`` as the Beijing/Hong Kong
calendar date, and ``None`` for a field the record lacks.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys

from .exceptions import BadResponseError, MalformedRecordError
from .fields import FIELDS, KEYS, NUMERIC_KEYS

BEIJING = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
_LARGEST = int(sys.float_info.max)  # a whole number past this overflows a spreadsheet's numbers


def _brief(value: object) -> str:
    """A value from an answer, quoted for a message: escapes shown as escapes, short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def parse_data_date(value: object) -> dt.date:
    """``2026-03-17T00:00:00+08:00`` -> 2026-03-17 (the Beijing date, never the 16th)."""
    if not isinstance(value, str) or not value.strip():
        raise MalformedRecordError(f"last_data_date {_brief(value)} is not a date")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise MalformedRecordError(f"last_data_date {_brief(value)} is not an ISO 8601 date") from None
    if stamp.tzinfo is not None:
        try:
            stamp = stamp.astimezone(BEIJING)
        except OverflowError:  # 9999-12-31T23:00-12:00 is in the year 10000 in Beijing
            raise MalformedRecordError(f"last_data_date {_brief(value)} is out of range") from None
    return stamp.date()


def _check_number(key: str, value: object, code: str) -> object:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedRecordError(f"{code}: field {key} is {_brief(value)}, not a number")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and abs(value) > _LARGEST:  # no float, so no cell, holds it: as infinity above
        return None
    return value


# Precomputed once: the numeric keys in catalog order, and the date strings already seen
# (every record of a snapshot carries the same last_data_date). A record is typed in one
# pass of plain dict lookups; only a value that is not a plain int or finite float takes
# the slow path, which says what is wrong with it.
_DATE_KEY = next(k for k in KEYS if k == "last_data_date")  # the catalog's own string: compared with `is`
_FIELDS_AFTER_CODE = tuple(k for k in KEYS[1:] if k in NUMERIC_KEYS or k is _DATE_KEY)
_DATES: dict[str, dt.date] = {}
_INF, _NINF = math.inf, -math.inf
#: the fields whose values are floats (amounts, ratios); the rest of the numbers are share counts
_FLOAT_KEYS = frozenset(f.key for f in FIELDS if f.key in NUMERIC_KEYS and f.kind != "shares")


def _date_of(value: object) -> dt.date | None:
    if value is None:
        return None
    if type(value) is str:
        day = _DATES.get(value)
        if day is None:
            day = parse_data_date(value)
            if len(_DATES) < 4096:
                _DATES[value] = day
        return day
    return parse_data_date(value)


def parse_record(raw: object) -> dict:
    """One API record -> a typed record with every catalog field."""
    if not isinstance(raw, dict):
        raise MalformedRecordError(f"record {_brief(raw)} is not an object")
    code = raw.get("stockCode")
    if not isinstance(code, str) or not code:
        raise MalformedRecordError("record without a stockCode")
    get = raw.get
    record = {"stockCode": code}
    for key in _FIELDS_AFTER_CODE:  # catalog order
        value = get(key)
        kind = type(value)
        if (kind is int and -_LARGEST <= value <= _LARGEST) or value is None or (
                kind is float and value == value and value != _INF and value != _NINF):
            if key is _DATE_KEY and value is not None:
                value = _date_of(value)
            elif kind is int:
                if key in _FLOAT_KEYS:
                    value = float(value)
            elif kind is float and key not in _FLOAT_KEYS and value.is_integer():
                value = int(value)
            record[key] = value
        elif key is _DATE_KEY:
            record[key] = _date_of(value)
        else:
            value = _check_number(key, value, code)
            record[key] = float(value) if value is not None and key in _FLOAT_KEYS else value
    return record


def split_answer(payload: object) -> list:
    """The ``data`` list of a successful answer (``code`` == 1 checked by the caller)."""
    if not isinstance(payload, dict):
        raise BadResponseError("the answer is not a JSON object")
    data = payload.get("data")
    if data is None:
        return []
    if not isinstance(data, list):
        raise BadResponseError("the answer's data is not a list")
    return data


def check_answer(payload: object, requested: list[str]) -> list[dict]:
    """The records of a successful answer, each an object naming a code we asked for.

    Anything else is a bad answer as a whole (a BadResponseError, worth a retry), never
    "no data": a record that is not an object, or whose ``stockCode`` is not one of the
    codes requested (a number such as 700, a code we did not ask for, none at all),
    means we cannot tell which codes the answer is about; nor can we when it holds two
    records for one code.
    """
    data = split_answer(payload)
    wanted = set(requested)
    seen: set[str] = set()
    for item in data:
        if not isinstance(item, dict):
            kind = _JSON_KINDS.get(type(item), "value")
            raise BadResponseError(f"the answer holds a record that is not an object (a {kind})")
        code = item.get("stockCode")
        if not isinstance(code, str):
            shown = "no stockCode" if code is None else f"stockCode {_brief(code)}, not text"
            raise BadResponseError(f"the answer holds a record with {shown}")
        if code not in wanted:
            raise BadResponseError(f"the answer holds a record for {code[:12]!r}, a code that was not asked for")
        if code in seen:  # two records for one code: which one holds is anyone's guess
            raise BadResponseError(f"the answer holds two records for {code}")
        seen.add(code)
    return data


_JSON_KINDS = {type(None): "null", bool: "true/false", int: "number", float: "number", str: "text", list: "list"}
REASON_KEYS = ("message", "msg", "error", "errorMessage", "error_message", "detail", "reason")


def reason_of(payload: object) -> str:
    """Why an error answer failed, wherever it says so: ``message``, ``msg``, or an
    ``error`` that is text or an object with its own ``message`` (as other Lixinger
    clients read it). Empty when the answer gives no reason."""
    if not isinstance(payload, dict):
        return ""
    for key in REASON_KEYS:
        value = payload.get(key)
        if isinstance(value, dict):
            value = reason_of(value) or (json.dumps(value, ensure_ascii=False) if value else "")
        elif isinstance(value, list):
            value = "; ".join(filter(None, (v if isinstance(v, str) else reason_of(v) for v in value)))
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
            text = str(value).strip()
            if key == "message" and text.lower() == "success":
                continue
            return text
    return ""


def index_records(raw_records: list, requested: list[str]) -> tuple[dict, dict, dict]:
    """Match raw records to the codes asked for.

    Returns ``(raw_by_code, records_by_code, errors_by_code)``: a malformed record is
    an error for its own code only; records for codes we did not ask for are dropped.
    """
    wanted = set(requested)
    raw_by_code: dict[str, dict] = {}
    records: dict[str, dict] = {}
    errors: dict[str, Exception] = {}
    for raw in raw_records:
        code = raw.get("stockCode") if isinstance(raw, dict) else None
        if code not in wanted:
            continue
        try:
            records[code] = parse_record(raw)
            raw_by_code[code] = raw
        except MalformedRecordError as exc:
            errors[code] = exc
    return raw_by_code, records, errors


def record_to_json(record: dict, keys=KEYS) -> dict:
    """A typed record as JSON-ready dict (dates as YYYY-MM-DD)."""
    out = {}
    for key in keys:
        value = record.get(key)
        out[key] = value.isoformat() if isinstance(value, dt.date) else value
    return out
