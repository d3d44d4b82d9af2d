"""The field catalog: the single source for the 42 fields of hk/company/hot/mm_ah.

Headers, number formats, the formulas' field lookup, the CLI and the docs all
read from here. Order is the API documentation's order.
"""

from __future__ import annotations

import difflib
from typing import NamedTuple

from .exceptions import UnknownFieldError

#: kinds of value, and the Excel number format each gets
KIND_FORMATS = {
    "code": "@",
    "date": "yyyy-mm-dd",
    "shares": "#,##0",
    "amount": "#,##0",
    "ratio": "0.00%",
}

WINDOWS = (1, 5, 20, 60, 120, 240)


class Field(NamedTuple):
    key: str
    zh: str
    en: str
    kind: str  # code | date | shares | amount | ratio
    window: int | None = None  # trading days, for the windowed families

    @property
    def number_format(self) -> str:
        return KIND_FORMATS[self.kind]

    @property
    def header(self) -> str:
        """Bilingual header, as the templates show it."""
        return f"{self.zh}\n{self.en}"


def _family(prefix: str, zh: str, en: str, kind: str, first_suffix: bool = True) -> list[Field]:
    out = []
    for n in WINDOWS:
        key = f"{prefix}_d{n}" if (n != 1 or first_suffix) else prefix
        out.append(Field(key, zh.format(n=n), en.format(n=n), kind, n))
    return out


FIELDS: tuple[Field, ...] = tuple(
    [
        Field("stockCode", "股票代码", "Stock code", "code"),
        Field("last_data_date", "数据时间", "Data date", "date"),
        Field("mm_sh", "港股通持仓", "Southbound holding (shares)", "shares"),
        Field("mm_sha", "港股通持仓金额", "Southbound holding value (HKD)", "amount"),
        Field("mm_sh_cap_r", "港股通持仓占H股比例", "Holding, % of H shares", "ratio"),
        Field("spc", "涨跌幅", "Price change", "ratio", 1),
    ]
    + _family("mm_sh_nba", "港股通过去{n}个交易日净买入金额", "Net buy amount, {n}D (HKD)", "amount")
    + _family("mm_sh_cap_rc", "港股通过去{n}个交易日持仓占H股变化比例", "Holding % change, {n}D", "ratio")
    + _family(
        "mm_shc_v_r",
        "港股通过去{n}个交易日持仓变化占成交量比例",
        "Holding change, % of volume, {n}D",
        "ratio",
        first_suffix=False,
    )
    + _family("mm_sh_nbv", "港股通过去{n}个交易日净买入股数", "Net buy volume, {n}D (shares)", "shares")
    + _family("mm_sh_nbp", "港股通过去{n}个交易日净买入收益", "Net buy profit, {n}D (HKD)", "amount")
    + _family("mm_sh_nbpr", "港股通过去{n}个交易日净买入收益率", "Net buy return, {n}D", "ratio")
)

KEYS: tuple[str, ...] = tuple(f.key for f in FIELDS)
NUMERIC_KEYS: frozenset[str] = frozenset(f.key for f in FIELDS if f.kind not in ("code", "date"))

_BY_NAME: dict[str, Field] = {}
for _f in FIELDS:
    _BY_NAME[_f.key.lower()] = _f
    _BY_NAME[_f.zh] = _f
    _BY_NAME[_f.en.lower()] = _f


def lookup(name: object) -> Field:
    """The field for an API key (any case), a 中文 label or an English label.

    >>> lookup("MM_SH_NBA_D20").key
    'mm_sh_nba_d20'
    >>> lookup("港股通持仓").key
    'mm_sh'
    """
    if isinstance(name, Field):
        return name
    if not isinstance(name, str) or not name.strip():
        raise UnknownFieldError(name, _suggest(str(name or "")))
    text = name.strip()
    found = _BY_NAME.get(text) or _BY_NAME.get(text.lower())
    if found is None:
        raise UnknownFieldError(name, _suggest(text))
    return found


def _suggest(text: str) -> list[str]:
    candidates = list(KEYS) + [f.zh for f in FIELDS]
    hits = difflib.get_close_matches(text.lower(), [c.lower() for c in candidates], n=3, cutoff=0.5)
    by_lower = {c.lower(): c for c in candidates}
    return [by_lower[h] for h in hits]


def resolve(names) -> list[Field]:
    """Fields for a list of names; the whole catalog when names is empty/None."""
    if not names:
        return list(FIELDS)
    return [lookup(n) for n in names]


def columns(spec: str | None) -> list[Field]:
    """The fields a comma-separated *spec* names (all 42 when empty), the code first."""
    fields = resolve([f for f in (spec or "").split(",") if f.strip()])
    if fields and fields[0].key != "stockCode":
        fields = [FIELDS[0]] + [f for f in fields if f.key != "stockCode"]
    return fields
