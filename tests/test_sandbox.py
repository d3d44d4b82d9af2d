"""The sandbox speaks the protocol and its data hangs together."""

import math

import pytest
import requests

from xl_addin.sandbox import Dataset, universe
from xl_addin.sandbox.data import WELL_KNOWN


def post(sandbox, body):
    return requests.post(sandbox.url + "/hk/company/hot/mm_ah", json=body, timeout=10)


@pytest.mark.parametrize(
    "codes,needle",
    [([], "1 to 100"), ([f"{i:05d}" for i in range(1, 102)], "1 to 100"), ([700], "strings"),
     ("00700", "array"), (["700"], "five-digit")],
)
def test_validates_like_the_real_service(sandbox, codes, needle):
    r = post(sandbox, {"token": sandbox.token, "stockCodes": codes})
    assert r.status_code == 400
    assert r.json()["code"] != 1 and needle in r.json()["message"]


def test_wrong_or_missing_token(sandbox):
    assert post(sandbox, {"token": "nope", "stockCodes": ["00700"]}).status_code == 401
    assert post(sandbox, {"stockCodes": ["00700"]}).status_code == 400


def test_answer_shape(sandbox):
    body = post(sandbox, {"token": sandbox.token, "stockCodes": ["00700", "00005", "99999"]}).json()
    assert body["code"] == 1 and body["message"] == "success"
    assert sorted(r["stockCode"] for r in body["data"]) == ["00005", "00700"]


def test_universe_is_realistic_and_deterministic():
    codes = universe()
    assert len(codes) >= 500 and len(set(codes)) == len(codes)
    assert set(WELL_KNOWN) <= set(codes) and "00700" in codes and "00005" in codes
    assert Dataset().record("00005") == Dataset().record("00005")


def test_values_hang_together():
    ds = Dataset()
    young = 0
    for code in ds.codes[:400]:
        if code == "00700":
            continue  # the documented (real) answer, served as published
        r = ds.record(code)
        assert 0 < r["mm_sh_cap_r"] < 0.8
        price = r["mm_sha"] / r["mm_sh"]
        assert 0.2 < price < 2000
        h_shares = r["mm_sh"] / r["mm_sh_cap_r"]
        for n in (1, 5, 20, 60, 120, 240):
            if f"mm_sh_nbv_d{n}" not in r:
                continue
            nbv, nba = r[f"mm_sh_nbv_d{n}"], r[f"mm_sh_nba_d{n}"]
            if nbv:
                assert nba / nbv > 0  # amount and shares agree in sign: a positive average price
                assert math.isclose(r[f"mm_sh_cap_rc_d{n}"], nbv / h_shares, rel_tol=0.05)
        if "mm_sh_nba_d240" not in r:
            young += 1
            assert "mm_sh_nba_d1" in r
    assert young >= 5, "some young listings lack the 240-day window"


# --- the adversary's faults (issue 12): the sandbox does what each promises ----------------------
def post_raw(sandbox, codes=("00700",)):
    return requests.post(sandbox.url + "/hk/company/hot/mm_ah", json={"token": sandbox.token, "stockCodes": list(codes)},
                         timeout=10, allow_redirects=False)


def test_fault_redirect_trickle_and_spec(sandbox):
    sandbox.inject_spec("redirect:308:http://127.0.0.1:9/api")
    r = post_raw(sandbox)
    assert r.status_code == 308 and r.headers["Location"] == "http://127.0.0.1:9/api/hk/company/hot/mm_ah"
    assert post_raw(sandbox).status_code == 308  # every request, until cleared
    sandbox.clear_faults()
    good = post_raw(sandbox).json()
    sandbox.inject("trickle", bytes=97, interval=0.001)  # slow, but all of it arrives
    assert post_raw(sandbox).json() == good
    assert [s.fault for s in sandbox.seen] == ["redirect", "redirect", None, "trickle"] and all(s.with_token for s in sandbox.seen)


def test_fault_drop_mid_body_sends_half(sandbox):
    sandbox.inject("drop-mid-body")
    with pytest.raises(requests.exceptions.RequestException):
        post_raw(sandbox)
    assert post_raw(sandbox).json()["code"] == 1  # once only


def test_fault_bodies(sandbox):
    sandbox.inject("bad-record")
    assert post_raw(sandbox).json()["data"] == [1, "x", None]
    sandbox.inject("numeric-code")
    assert post_raw(sandbox).json()["data"][0]["stockCode"] == 700
    sandbox.inject("echo-token")
    assert sandbox.token in post_raw(sandbox).json()["data"][0]["remark"]
    sandbox.inject("403", message="not in your plan")
    r = post_raw(sandbox)
    assert r.status_code == 403 and r.json()["message"] == "not in your plan"
    sandbox.inject("error-field", message="why")
    assert post_raw(sandbox).json() == {"code": 0, "error": {"message": "why"}}
    sandbox.inject("gzip-bomb", size=1 << 20)
    r = post_raw(sandbox)
    assert r.headers["Content-Encoding"] == "gzip" and int(r.headers["Content-Length"]) < 10_000
    assert len(r.content) == 1 << 20 and r.json() == {"code": 1, "message": "success", "data": []}
