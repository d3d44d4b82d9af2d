import pytest

from xl_addin.exceptions import UnknownFieldError
from xl_addin.fields import FIELDS, KEYS, lookup, resolve


def test_catalog_is_the_documented_field_set(documented):
    assert len(FIELDS) == 42
    assert len(set(KEYS)) == 42
    assert set(KEYS) == set(documented["data"][0])


def test_every_field_has_labels_kind_and_window():
    for f in FIELDS:
        assert f.zh and f.en and f.kind in ("code", "date", "shares", "amount", "ratio")
    windowed = [f for f in FIELDS if f.window]
    assert {f.window for f in windowed} == {1, 5, 20, 60, 120, 240}
    assert lookup("mm_sh_nba_d20").window == 20 and lookup("mm_sh_nba_d20").kind == "amount"
    assert lookup("mm_shc_v_r").window == 1 and lookup("mm_shc_v_r").kind == "ratio"
    assert lookup("mm_sh_nbv_d5").kind == "shares"
    assert lookup("last_data_date").kind == "date"
    assert len({f.zh for f in FIELDS}) == 42, "Chinese labels must be unambiguous"


@pytest.mark.parametrize("name", ["mm_sh_nba_d20", "MM_SH_NBA_D20", " Mm_Sh_Nba_D20 ", "港股通过去20个交易日净买入金额"])
def test_lookup_by_key_any_case_or_chinese_label(name):
    assert lookup(name).key == "mm_sh_nba_d20"


def test_unknown_field_lists_closest_matches():
    with pytest.raises(UnknownFieldError) as err:
        lookup("mm_sh_nba_d21")
    assert "mm_sh_nba_d20" in str(err.value) or "mm_sh_nba_d1" in str(err.value)
    assert "mm_sh_nba_d21" in str(err.value)
    with pytest.raises(UnknownFieldError, match="lx-addin fields"):
        lookup("zzzzzz")


def test_resolve_empty_is_everything_in_documented_order():
    assert [f.key for f in resolve(None)][:3] == ["stockCode", "last_data_date", "mm_sh"]
    assert [f.key for f in resolve(["spc", "mm_sh"])] == ["spc", "mm_sh"]
