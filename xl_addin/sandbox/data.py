"""Deterministic synthetic Southbound data for the sandbox.

A universe of several hundred codes (well-known Southbound names first), each with
a record whose numbers hang together: holding value = shares x price, ratio =
shares / H shares, net-buy amount = net-buy shares x average price, the return =
profit / amount. Young listings lack the long windows. 00700 is the documented
example answer, exactly. Same seed, same data, on every machine.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from functools import lru_cache
from pathlib import Path

from ..fields import WINDOWS

DEFAULT_AS_OF = dt.date(2026, 3, 17)  # the documented example's data date
DEFAULT_SIZE = 600
SEED = 20260317

#: Well-known Southbound names, the sandbox's (and the templates') anchors.
WELL_KNOWN = {
    "00700": "Tencent", "00005": "HSBC", "09988": "Alibaba", "03690": "Meituan",
    "01810": "Xiaomi", "00939": "CCB", "01398": "ICBC", "03988": "Bank of China",
    "00388": "HKEX", "02318": "Ping An", "00883": "CNOOC", "00941": "China Mobile",
    "01299": "AIA", "02020": "ANTA", "09618": "JD.com", "01211": "BYD",
    "00981": "SMIC", "02269": "WuXi Biologics", "00027": "Galaxy Ent.", "00016": "SHK Properties",
    "00001": "CK Hutchison", "00002": "CLP", "00003": "HK & China Gas", "00011": "Hang Seng Bank",
    "00175": "Geely Auto", "02015": "Li Auto", "09868": "XPeng", "09999": "NetEase",
    "01024": "Kuaishou", "06618": "JD Health", "00267": "CITIC", "00386": "Sinopec",
    "00857": "PetroChina", "01088": "China Shenhua", "02628": "China Life", "00688": "China Overseas",
    "01109": "China Resources Land", "02331": "Li Ning", "00291": "China Resources Beer", "06862": "Haidilao",
    "00968": "Xinyi Solar", "02382": "Sunny Optical", "00285": "BYD Electronic", "00992": "Lenovo",
    "00762": "China Unicom", "00728": "China Telecom", "01928": "Sands China", "00066": "MTR",
    "00836": "China Resources Power", "02899": "Zijin Mining", "01093": "CSPC Pharma", "00960": "Longfor",
    "02333": "Great Wall Motor", "00669": "Techtronic", "01177": "Sino Biopharm", "02313": "Shenzhou Intl",
    "00006": "Power Assets", "00012": "Henderson Land", "00823": "Link REIT", "01876": "Budweiser APAC",
    "06690": "Haier Smart Home", "02688": "ENN Energy", "00322": "Tingyi", "00151": "Want Want",
    "03968": "China Merchants Bank", "01658": "Postal Savings Bank", "00998": "CITIC Bank", "03328": "Bank of Communications",
    "01919": "COSCO Shipping", "00316": "OOIL", "01347": "Hua Hong Semi", "00020": "SenseTime",
    "09888": "Baidu", "09961": "Trip.com", "09626": "Bilibili", "02400": "XD Inc",
    "00780": "Tongcheng Travel", "01801": "Innovent", "06160": "BeiGene", "02359": "WuXi AppTec",
    "00853": "MicroPort", "01833": "Ping An Good Doctor", "03692": "Hansoh Pharma", "01516": "Sunac Services",
    "02007": "Country Garden", "03333": "Evergrande", "00914": "Anhui Conch", "02600": "Chalco",
    "01378": "China Hongqiao", "00358": "Jiangxi Copper", "03993": "CMOC", "01818": "Zhaojin Mining",
}
NAMES = dict(WELL_KNOWN)


def _documented_answer() -> dict:
    return json.loads((Path(__file__).with_name("documented_answer.json")).read_text("utf-8"))


@lru_cache(maxsize=4)
def universe(size: int = DEFAULT_SIZE, seed: int = SEED) -> tuple[str, ...]:
    """The sandbox's codes: the well-known names, then seeded others in 00001..09999."""
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


def make_record(code: str, as_of: dt.date = DEFAULT_AS_OF, seed: int = SEED) -> dict:
    """One API record for *code* on *as_of*; 00700 on the documented date is the documented one."""
    if code == "00700" and as_of == DEFAULT_AS_OF:
        return dict(_documented_answer()["data"][0])
    rng = random.Random(f"{seed}:{code}:{as_of.isoformat()}")
    base = random.Random(f"{seed}:{code}")  # per-company constants, stable across dates
    price = math.exp(base.uniform(math.log(0.4), math.log(600)))
    price *= 1 + rng.gauss(0, 0.03)
    h_shares = 10 ** base.uniform(8.3, 10.6)
    cap_r = min(0.72, max(0.0005, base.betavariate(1.3, 6.0)))
    cap_r *= 1 + rng.gauss(0, 0.02)
    mm_sh = int(round(h_shares * cap_r))
    daily_volume = h_shares * base.uniform(0.0008, 0.012)
    young = code not in WELL_KNOWN and base.random() < 0.06
    age_days = base.choice((45, 90, 150, 200)) if young else 10_000
    record = {
        "stockCode": code,
        "last_data_date": _stamp(as_of),
        "mm_sh": mm_sh,
        "mm_sha": mm_sh * price,
        "mm_sh_cap_r": mm_sh / h_shares,
        "spc": round(rng.gauss(0.0005, 0.022), 4),
    }
    drift = rng.gauss(0, 0.02)
    for n in WINDOWS:
        if n > age_days:
            continue
        net_shares = int(round(daily_volume * (drift * n + rng.gauss(0, 0.04) * math.sqrt(n))))
        if n == 1:
            avg_price = price / (1 + record["spc"] / 2)
        else:
            avg_price = price * (1 + rng.gauss(0, 0.015 * math.sqrt(n)))
        amount = net_shares * avg_price
        profit = net_shares * (price - avg_price)
        suffix = f"_d{n}"
        record["mm_sh_nba" + suffix] = amount
        record["mm_sh_cap_rc" + suffix] = net_shares / h_shares
        record["mm_shc_v_r" + (suffix if n != 1 else "")] = net_shares / (daily_volume * n)
        record["mm_sh_nbv" + suffix] = net_shares
        record["mm_sh_nbp" + suffix] = profit
        record["mm_sh_nbpr" + suffix] = profit / abs(amount) if amount else 0.0
    keys = list(record)
    rng.shuffle(keys)  # the real service does not promise key order
    return {k: record[k] for k in keys}


class Dataset:
    """The answers a sandbox gives: codes in the universe, as of one date."""

    def __init__(self, size: int = DEFAULT_SIZE, as_of: dt.date = DEFAULT_AS_OF, seed: int = SEED):
        self.codes = universe(size, seed)
        self._known = frozenset(self.codes)
        self.as_of = as_of
        self.seed = seed

    def record(self, code: str) -> dict | None:
        if code not in self._known:
            return None
        return make_record(code, self.as_of, self.seed)
