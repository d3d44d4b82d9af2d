"""Deterministic synthetic Southbound data for the sandbox, moving through time.

A universe of several hundred codes (well-known Southbound names first), each with
a daily history on a trading calendar (weekdays from 2022 to 2030; Hong Kong's
public holidays are not modelled), so that the sandbox can be asked "as of" any
date and the days hang together the way the real service's do:

* today's ``mm_sh`` = yesterday's + today's ``mm_sh_nbv_d1``, and ``mm_sh_nbv_dN`` is
  the sum of the last N daily values (both by construction: the holding is one
  integer series and the windows are its differences);
* ``mm_sh_cap_rc_dN`` = today's ``mm_sh_cap_r`` - the ratio N trading days ago;
* ``spc`` is the day's price change (rounded to 4 places like the API), holding
  value = shares x price, net-buy amount = net-buy shares x the window's average
  price, profit = shares x (price - average price), return = profit / amount, and
  the volume ratio = net-buy shares / the window's volume.

Young listings have no record before they list and lack the windows longer than
their age. Same seed, same data, bit for bit, on every machine and numpy version:
Python's ``random`` for the per-company constants, PCG64's raw bits for the daily
paths, and only exactly rounded arithmetic after that (no exp/log). A path is built
once per code (about a millisecond) and cached, so any day's 600 answers are cheap.

00700 on 2026-03-17 is the documented example answer, served exactly. Its path is
anchored on it: the holding N days before is the documented holding minus the
documented ``mm_sh_nbv_dN``, the H-share count is solved so that the ratios N days
before match the documented ``mm_sh_cap_rc_dN`` (Tencent buys back shares), and the
price path passes through the documented price and ``spc``. The one exception
to the rules above is that record's amount-derived fields (``mm_sh_nba_dN``,
``mm_sh_nbp_dN``, ``mm_sh_nbpr_dN``, ``mm_shc_v_r*``), which the real service
computes from trades the sandbox does not model; they are served as published,
and the consistency tests skip them for that one (code, day).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from functools import lru_cache
from pathlib import Path


from ..fields import WINDOWS
from ..watchlist import WELL_KNOWN

DEFAULT_AS_OF = dt.date(2026, 3, 17)  # the documented example's data date
DEFAULT_SIZE = 600
SEED = 20260317
DOCUMENTED_CODE = "00700"

#: the trading calendar: weekdays from FIRST_DAY (a Monday) to LAST_DAY
FIRST_DAY = dt.date(2022, 1, 3)
LAST_DAY = dt.date(2030, 12, 31)

#: Well-known Southbound names (:mod:`xl_addin.watchlist`), the sandbox's anchors.
NAMES = dict(WELL_KNOWN)




def _documented_answer() -> dict:
    return json.loads((Path(__file__).with_name("documented_answer.json")).read_text("utf-8"))


@lru_cache(maxsize=1)
def _documented() -> dict:
    return _documented_answer()["data"][0]


@lru_cache(maxsize=4)
def universe(size: int = DEFAULT_SIZE, seed: int = SEED) -> tuple[str, ...]:
    """The sandbox's codes: the well-known names, then seeded others in 00001..09999."""
    if size > 9999:  # 00001..09999 hold no more: drawing would never end
        raise ValueError(f"the sandbox's universe holds at most 9,999 codes (00001..09999), not {size:,}")
    codes = list(WELL_KNOWN)
    taken = set(codes)
    rng = random.Random(f"universe:{seed}")
    while len(codes) < size:
        code = f"{rng.randint(1, 9999):05d}"
        if code not in taken:
            taken.add(code)
            codes.append(code)
    return tuple(codes)


def _stamp(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00+08:00"


# -- the trading calendar ------------------------------------------------------------------
def day_index(day: dt.date) -> int:
    """The index of the last trading day on or before *day* (a weekend gives its Friday)."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"the sandbox has data from {FIRST_DAY} to {LAST_DAY}, not for {day}")
    weeks, rest = divmod((day - FIRST_DAY).days, 7)
    return weeks * 5 + min(rest, 4)


def trading_day(index: int) -> dt.date:
    weeks, rest = divmod(index, 5)
    return FIRST_DAY + dt.timedelta(days=weeks * 7 + rest)


def trading_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """The trading days in [start, end]."""
    first = day_index(start)
    if trading_day(first) < start:
        first += 1
    return [trading_day(i) for i in range(first, day_index(end) + 1)]


def last_trading_day(day: dt.date) -> dt.date:
    """The data date the service shows on *day*: that day, or the trading day before it."""
    return trading_day(day_index(day))


N_DAYS = day_index(LAST_DAY) + 1
ANCHOR = day_index(DEFAULT_AS_OF)


# -- one company's daily path ----------------------------------------------------------------
# Bit for bit the same on every machine and numpy version: random bits from PCG64's raw
# output (a stream numpy promises to keep), and from there only +, -, *, / and sqrt
# (exactly rounded by IEEE 754), one numpy operation at a time (nothing to fuse), and
# sequential sums. No exp/log (libm and numpy's SIMD versions differ in the last bit).
def _normals(seed: int, code: str, streams: int, n: int):
    """*streams* arrays of *n* roughly normal draws (the sum of 4 uniforms, centred and scaled)."""
    import numpy as np  # numpy loads when a path is first built, not on import (NAMES serves the templates)

    digest = hashlib.sha256(f"{seed}:{code}:path".encode()).digest()
    bits = np.random.PCG64(int.from_bytes(digest[:8], "little")).random_raw(streams * n * 4)
    uniform = (bits >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)  # exact
    uniform = uniform.reshape(streams, 4, n)
    total = uniform[:, 0, :].copy()
    for k in range(1, 4):
        total += uniform[:, k, :]
    total -= 2.0
    total *= 1.7320508075688772  # variance 4/12 -> 1
    return list(total)


def _positive(x):
    """A smooth map of the reals onto the positives with f(0) = 1 and f'(0) = 1 (like exp, without it)."""
    import numpy as np

    y = x * 2.0
    return (y + np.sqrt(y * y + 4.0)) / 2.0


def _detrended_walk(steps, span: int):
    """A random walk minus its trailing mean over *span* days: wanders, but comes back."""
    import numpy as np

    walk = np.cumsum(steps)
    sums = np.concatenate(([0.0], np.cumsum(walk)))
    idx = np.arange(len(walk))
    lo = np.maximum(0, idx + 1 - span)
    mean = (sums[idx + 1] - sums[lo]) / (idx + 1 - lo).astype(np.float64)
    return walk - mean


def _through(n: int, points: dict[int, float]):
    """Values over *n* days: exact at *points*, straight lines between them, flat outside."""
    import numpy as np

    xs = sorted(points)
    out = np.empty(n)
    out[: xs[0]] = points[xs[0]]
    out[xs[-1] :] = points[xs[-1]]
    for x0, x1 in zip(xs, xs[1:]):
        slope = (points[x1] - points[x0]) / (x1 - x0)
        steps = np.arange(x1 - x0, dtype=np.float64) * slope
        out[x0:x1] = steps + points[x0]
    return out


class CompanyPath:
    """One company's daily series over the whole calendar (numpy arrays, index = trading day)."""

    __slots__ = ("code", "listed", "holding", "h_shares", "price", "cum_avg", "cum_volume")

    def __init__(self, code: str, seed: int):
        import numpy as np

        self.code = code
        base = random.Random(f"{seed}:{code}")  # per-company constants
        price = max(0.4, base.uniform(1.0, 10.0) * base.choice((0.1, 1.0, 10.0, 100.0)))
        h_shares = base.uniform(2.0, 40.0) * base.choice((1e8, 1e9))
        cap_r = min(0.72, max(0.0005, 0.72 * base.random() * base.random()))
        daily_volume = h_shares * base.uniform(0.0008, 0.012)
        young = code not in WELL_KNOWN and base.random() < 0.06
        age = base.choice((45, 90, 150, 200)) if young else None
        self.listed = ANCHOR - age if age else 0

        ratio_steps, price_steps, noise = _normals(seed, code, 3, N_DAYS)
        ratio_walk = _positive(_detrended_walk(ratio_steps * 0.006, 120))
        price_walk = _positive(_detrended_walk(price_steps * 0.02, 250))
        ratio = np.clip(ratio_walk / ratio_walk[ANCHOR] * cap_r, 0.0005, 0.72)
        h = np.full(N_DAYS, h_shares)
        holding = h * ratio
        price_path = price_walk / price_walk[ANCHOR] * price
        if code == DOCUMENTED_CODE:
            holding, h, price_path = _anchor_documented(holding, price_walk)
        self.holding = np.rint(holding).astype(np.int64)
        self.h_shares = h
        self.price = price_path
        step = np.empty(N_DAYS)
        step[0] = 0.0
        step[1:] = np.round(price_path[1:] / price_path[:-1] - 1, 4)
        average = price_path / (1 + step / 2)  # the day's trades: between yesterday's and today's price
        net = np.abs(np.diff(self.holding, prepend=self.holding[0])).astype(np.float64)
        volume = np.maximum(_positive(noise * 0.35) * daily_volume, net * 1.25 + 1000.0)
        self.cum_avg = np.cumsum(average)
        self.cum_volume = np.cumsum(volume)

    def ratio(self, t: int) -> float:
        return int(self.holding[t]) / float(self.h_shares[t])

    def spc(self, t: int) -> float:
        if t == 0:
            return 0.0
        return round(float(self.price[t]) / float(self.price[t - 1]) - 1, 4)

    def record(self, t: int) -> dict | None:
        """The API record for trading day *t*, or None before the company listed."""
        if t < self.listed:
            return None
        mm_sh = int(self.holding[t])
        price = float(self.price[t])
        cap_r = self.ratio(t)
        record = {
            "stockCode": self.code,
            "last_data_date": _stamp(trading_day(t)),
            "mm_sh": mm_sh,
            "mm_sha": mm_sh * price,
            "mm_sh_cap_r": cap_r,
            "spc": self.spc(t),
        }
        for n in WINDOWS:
            if n > t - self.listed:
                continue
            net = mm_sh - int(self.holding[t - n])
            average = (float(self.cum_avg[t]) - float(self.cum_avg[t - n])) / n
            volume = float(self.cum_volume[t]) - float(self.cum_volume[t - n])
            amount = net * average
            profit = net * (price - average)
            suffix = f"_d{n}"
            record["mm_sh_nba" + suffix] = amount
            record["mm_sh_cap_rc" + suffix] = cap_r - self.ratio(t - n)
            record["mm_shc_v_r" + (suffix if n != 1 else "")] = net / volume
            record["mm_sh_nbv" + suffix] = net
            record["mm_sh_nbp" + suffix] = profit
            record["mm_sh_nbpr" + suffix] = profit / abs(amount) if amount else 0.0
        return record


def _anchor_documented(holding, price_walk):
    """00700's holding, H-share count and price, passing through the documented record."""
    doc = _documented()
    mm_sh, cap_r = doc["mm_sh"], doc["mm_sh_cap_r"]
    held = {ANCHOR: float(mm_sh)}
    h_at = {ANCHOR: mm_sh / cap_r}
    for n in WINDOWS:
        before = mm_sh - doc[f"mm_sh_nbv_d{n}"]
        held[ANCHOR - n] = float(before)
        h_at[ANCHOR - n] = before / (cap_r - doc[f"mm_sh_cap_rc_d{n}"])
    h = _through(N_DAYS, h_at)
    holding = holding * (mm_sh / holding[ANCHOR])
    holding = holding + _through(N_DAYS, {x: v - holding[x] for x, v in held.items()})
    price = doc["mm_sha"] / mm_sh
    before = price / (1 + doc["spc"])  # the day before, so that the day's change is the documented one
    path = price_walk / price_walk[ANCHOR - 1] * before
    path[ANCHOR:] = price_walk[ANCHOR:] / price_walk[ANCHOR] * price
    return holding, h, path


@lru_cache(maxsize=1024)
def company_path(code: str, seed: int = SEED) -> CompanyPath:
    """The cached daily path of *code* (a few hundred microseconds to build, then free)."""
    return CompanyPath(code, seed)


def make_record(code: str, as_of: dt.date = DEFAULT_AS_OF, seed: int = SEED) -> dict | None:
    """The API record for *code* as the service shows it on *as_of* (a weekend shows Friday's).

    None when the company had not listed yet. 00700 on the documented date is the documented one.
    """
    t = day_index(as_of)
    if code == DOCUMENTED_CODE and t == ANCHOR:
        return dict(_documented())
    record = company_path(code, seed).record(t)
    if record is None:
        return None
    keys = list(record)
    random.Random(f"{seed}:{code}:{t}").shuffle(keys)  # the real service does not promise key order
    return {k: record[k] for k in keys}


class Dataset:
    """The answers a sandbox gives: codes in the universe, as of one date (which may move)."""

    def __init__(self, size: int = DEFAULT_SIZE, as_of: dt.date = DEFAULT_AS_OF, seed: int = SEED):
        self.codes = universe(size, seed)
        self._known = frozenset(self.codes)
        self.seed = seed
        self.as_of = as_of

    @property
    def as_of(self) -> dt.date:
        return self._as_of

    @as_of.setter
    def as_of(self, day: dt.date) -> None:
        if isinstance(day, str):
            day = dt.date.fromisoformat(day)
        if isinstance(day, dt.datetime):
            day = day.date()
        day_index(day)  # refuses a date outside the calendar, with the range in the message
        self._as_of = day

    @property
    def data_date(self) -> dt.date:
        """The trading day the answers are for (as_of, or the trading day before it)."""
        return last_trading_day(self._as_of)

    def record(self, code: str) -> dict | None:
        if code not in self._known:
            return None
        return make_record(code, self._as_of, self.seed)
