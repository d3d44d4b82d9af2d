"""The sandbox moves in time, and its days hang together like the real service's."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys

import pytest

from xl_addin.client import MMAHClient
from xl_addin.config import Settings
from xl_addin.credentials import Token
from xl_addin.fields import WINDOWS
from xl_addin.records import parse_record
from xl_addin.sandbox import Dataset, Sandbox, universe
from xl_addin.sandbox.data import DEFAULT_AS_OF, make_record, trading_days
from xl_addin.store import Snapshot, SQLiteStore

START, END = dt.date(2026, 1, 5), dt.date(2026, 3, 31)  # ~60 trading days around the documented date
DOCUMENTED = ("00700", DEFAULT_AS_OF)
AMOUNT_PREFIXES = ("mm_sh_nba", "mm_sh_nbp", "mm_sh_nbpr", "mm_shc_v_r")


def _young_code() -> str:
    """A listing young enough to list inside the window the tests walk."""
    for code in universe():
        if make_record(code, START) is None and make_record(code, END) is not None:
            return code
    raise AssertionError("no listing young enough in the universe")


def sample_codes() -> list[str]:
    return ["00700", "00005", "09988", *universe()[200:600:40], _young_code()]


def history_of(code: str, days: list[dt.date]) -> list[dict]:
    """Records on *days* plus the 240 trading days before them, so every window can be checked."""
    before = trading_days(days[0] - dt.timedelta(days=400), days[0] - dt.timedelta(days=1))[-240:]
    return [r for r in (make_record(code, d) for d in before + days) if r is not None]


def test_weekends_show_fridays_data_and_the_calendar_has_limits():
    friday = dt.date(2026, 3, 13)
    ds = Dataset(as_of=dt.date(2026, 3, 15))
    assert ds.data_date == friday and ds.record("00005") == make_record("00005", friday)
    assert ds.record("00005")["last_data_date"] == "2026-03-13T00:00:00+08:00"
    with pytest.raises(ValueError, match="2022-01-03 to 2030-12-31"):
        Dataset(as_of=dt.date(1999, 1, 1))


def test_each_day_follows_from_the_day_before():
    days = trading_days(START, END)
    assert 58 <= len(days) <= 62
    checked = 0
    for code in sample_codes():
        records = history_of(code, days)
        walked = sum(1 for d in days if make_record(code, d) is not None)
        assert walked >= 20
        for i in range(max(1, len(records) - walked), len(records)):
            r, prev = records[i], records[i - 1]
            if "mm_sh_nbv_d1" not in r:
                continue  # the listing day: nothing before it
            assert r["mm_sh"] == prev["mm_sh"] + r["mm_sh_nbv_d1"], (code, r["last_data_date"])
            price, prev_price = r["mm_sha"] / r["mm_sh"], prev["mm_sha"] / prev["mm_sh"]
            assert abs(r["spc"] - (price / prev_price - 1)) <= 5.0001e-5, (code, r["last_data_date"])
            for n in WINDOWS:
                if f"mm_sh_nbv_d{n}" not in r:
                    assert n > i, "only the windows longer than the listing's age are missing"
                    continue
                window = records[i - n + 1 : i + 1]
                assert sum(w["mm_sh_nbv_d1"] for w in window) == r[f"mm_sh_nbv_d{n}"], (code, n, r["last_data_date"])
                ratio_change = r["mm_sh_cap_r"] - records[i - n]["mm_sh_cap_r"]
                assert math.isclose(r[f"mm_sh_cap_rc_d{n}"], ratio_change, rel_tol=1e-9, abs_tol=1e-15), (code, n)
                checked += 1
    assert checked > 500


def test_amounts_agree_with_shares_and_prices():
    for code in sample_codes():
        for day in trading_days(START, END):
            r = make_record(code, day)
            if r is None or (code, day) == DOCUMENTED:
                continue  # the documented answer: its amount fields are the real service's, as published
            price = r["mm_sha"] / r["mm_sh"]
            for n in WINDOWS:
                suffix = f"_d{n}"
                if "mm_sh_nbv" + suffix not in r:
                    continue
                nbv, nba, nbp = r["mm_sh_nbv" + suffix], r["mm_sh_nba" + suffix], r["mm_sh_nbp" + suffix]
                if nbv == 0:
                    assert nba == 0 and nbp == 0
                    continue
                assert nba / nbv > 0  # a positive average price
                assert math.isclose(nbp, nbv * price - nba, rel_tol=1e-6, abs_tol=1e-3)
                assert math.isclose(r["mm_sh_nbpr" + suffix], nbp / abs(nba), rel_tol=1e-9)
                volume_ratio = r["mm_shc_v_r" + (suffix if n > 1 else "")]
                assert volume_ratio * nbv > 0 and abs(volume_ratio) < 1


def test_the_documented_day_is_still_the_documented_answer(documented):
    for day in (DEFAULT_AS_OF, DEFAULT_AS_OF + dt.timedelta(days=1)):
        with Sandbox(as_of=DEFAULT_AS_OF) as sb:
            sb.as_of = day
            got = MMAHClient(Token(sb.token), Settings(base_url=sb.url)).fetch(["00700"]).raw["00700"]
        if day == DEFAULT_AS_OF:
            assert got == documented["data"][0]
        else:
            assert got != documented["data"][0] and got["mm_sh"] == documented["data"][0]["mm_sh"] + got["mm_sh_nbv_d1"]


def test_before_it_lists_a_young_code_has_no_data(sandbox):
    code = _young_code()
    sandbox.as_of = START
    client = MMAHClient(Token(sandbox.token), Settings(base_url=sandbox.url))
    assert client.fetch([code]).absent == [code]
    sandbox.as_of = END
    assert code in client.fetch([code]).records


def test_the_same_seed_gives_the_same_data_in_another_process():
    probe = [("00005", "2026-02-02"), ("09988", "2028-07-14"), (universe()[333], "2023-05-05")]
    script = ("import json, sys, datetime as dt; from xl_addin.sandbox.data import make_record; "
              "print(json.dumps([make_record(c, dt.date.fromisoformat(d)) for c, d in json.loads(sys.argv[1])]))")
    out = subprocess.run([sys.executable, "-c", script, json.dumps(probe)], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "12345", "PATH": ""})
    here = [make_record(c, dt.date.fromisoformat(d)) for c, d in probe]
    assert json.loads(out.stdout) == json.loads(json.dumps(here))


def test_the_data_is_the_data_this_test_was_written_against():
    """Bit for bit on any machine and numpy version: the generator uses only exactly rounded
    arithmetic on PCG64's raw bits. If this fails, the sandbox's data changed (or a platform
    computes differently): say so in the change, and update the digest deliberately."""
    import hashlib

    probe = [(c, d) for c in ("00005", "09988", universe()[333], universe()[517])
             for d in ("2022-03-01", "2026-02-02", "2030-11-29")]
    records = [make_record(c, dt.date.fromisoformat(d)) for c, d in probe]
    digest = hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()
    assert digest == "f619092cc28fcae59c0e6c49bdf8945a09fa39763e800926499443be15a00239"


def test_snapshots_fetched_on_several_days_come_back_as_a_series(sandbox, tmp_path):
    """Through the real HTTP sandbox: fetch on each day, keep in the store, read the series back."""
    codes = ["00700", "00005", "02318", *universe()[300:303]]
    days = trading_days(dt.date(2026, 3, 9), dt.date(2026, 3, 20))
    store = SQLiteStore(tmp_path / "history.sqlite3")
    client = MMAHClient(Token(sandbox.token), Settings(base_url=sandbox.url))
    for i, day in enumerate(days):
        sandbox.as_of = day
        fetched = client.fetch(codes)
        assert not fetched.errors
        store.put(Snapshot.from_record(sandbox.url, r, 1_773_000_000.0 + i * 86_400) for r in fetched.records.values())
    sandbox.as_of = dt.date(2026, 3, 21)  # a Saturday: Friday's data again, kept once
    store.put(Snapshot.from_record(sandbox.url, r, 1_774_000_000.0) for r in client.fetch(codes).records.values())
    assert store.info().snapshots == len(codes) * len(days) and store.info().replacements == len(codes)
    rows = store.series(codes, ["mm_sh", "mm_sh_nbv_d1", "mm_sh_nbv_d5"], days[0], days[-1], source=sandbox.url)
    for code in codes:
        mine = [r for r in rows if r[0] == code]
        assert [r[1] for r in mine] == days
        for (_, _, before, _, _), (_, day, mm_sh, d1, _) in zip(mine, mine[1:]):
            assert mm_sh - before == d1, (code, day)
        for k in range(4, len(mine)):
            assert mine[k][4] == sum(r[3] for r in mine[k - 4 : k + 1])
    assert sandbox.request_count == len(days) + 1


def test_a_universe_larger_than_the_codes_it_draws_from_is_refused_not_endless():
    """``universe(10_000)`` drew from 00001..09999 for ever; it is a clear error now."""
    import pytest

    from xl_addin.sandbox.data import universe

    assert len(universe(9999)) == 9999
    with pytest.raises(ValueError, match="at most 9,999 codes"):
        universe(10_000)
